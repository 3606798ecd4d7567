"""Real `nospy serve` processes for the server tests: uvicorn on 127.0.0.1, a real database.

Each `Server` is a child process running the installed CLI, so the tests go through HTTP exactly as
a user's browser or script does, and can kill the process to test recovery.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from nospy.server.auth import create_token
from nospy.server.db import connect, migrate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_AGREEMENT = ROOT / "examples" / "agreement.yaml"

# two releases of a small root filesystem, for image diffs
RX200_BASE = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nadmin:x:1000:1000::/home/admin:/bin/sh\n",
    "etc/shadow": b"root:*:19000:0:99999:7:::\nadmin:$6$abc$xyz:19000:0:99999:7:::\n",
    "etc/inittab": b"::sysinit:/etc/init.d/rcS\nttyS0::respawn:/sbin/getty -L ttyS0 115200 vt100\n",
    "etc/init.d/S50dropbear": b"#!/bin/sh\n/usr/sbin/dropbear -p 22\n",
    "etc/version": b"3.2.0\n",
}
# the next release: a diagnostics script that hands out a shell on port 2323, a console without login
RX200_NEXT = {
    **RX200_BASE,
    "etc/version": b"3.2.1\n",
    "etc/init.d/S99diag": b"#!/bin/sh\ntelnetd -l /bin/sh -p 2323\n",
    "etc/inittab": b"::sysinit:/etc/init.d/rcS\nttyS0::respawn:-/bin/sh\n",
}


def firmware_tar(files: dict[str, bytes]) -> bytes:
    """A small root filesystem as a tar image (executable init scripts)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if "/init.d/" in name else 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def new_token(data: Path, name: str, database_url: str | None = None) -> str:
    data.mkdir(parents=True, exist_ok=True)
    engine, sessions = connect(database_url or f"sqlite:///{(data / 'nospy.db').resolve()}")
    migrate(engine)
    token = create_token(sessions, name)
    engine.dispose()
    return token


class Server:
    """``nospy serve`` in a child process; `start` waits until it answers."""

    def __init__(self, data: Path, env: dict[str, str] | None = None) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / f"server-{self.port}.log"

    def start(self, timeout: float = 60.0) -> Server:
        self.data.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nospy", "serve", "--data", str(self.data), "--port", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to tidy up, as in a crash or power loss."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None


@contextmanager
def running(data: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = Server(data, env).start()
    try:
        yield server
    finally:
        server.stop()


def submit(url: str, token: str | None, files: list[tuple[str, tuple[str, bytes]]]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/api/checks", headers=headers, files=files, timeout=60)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_finished(url: str, check_id: str, token: str, timeout: float = 120.0, what: str = "checks") -> dict[str, Any]:
    """Poll a check (or, with what="diffs", a diff) until it is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/api/{what}/{check_id}", headers=bearer(token), timeout=10)
        assert r.status_code == 200, r.text
        check: dict[str, Any] = r.json()
        if check["state"] in ("done", "failed"):
            return check
        time.sleep(0.05)
    raise AssertionError(f"check {check_id} did not finish: {check}")


class Postgres:
    """A throwaway PostgreSQL cluster (Debian's server binaries), on 127.0.0.1 and a socket in a temp dir."""

    def __init__(self) -> None:
        bindir = Path("/usr/lib/postgresql")
        versions = sorted(bindir.glob("*/bin/initdb"))
        if not versions:
            raise FileNotFoundError("PostgreSQL server binaries (Debian package postgresql) are not installed")
        self.bin = versions[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="nospy-pg-"))
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        # initdb and postgres refuse to run as root: run them as the postgres user when we are root
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
