"""Load on `nospy serve`: concurrent clients on loopback for a fixed time, then an audit.

    .venv/bin/python benchmarks/serve_load.py [--clients 50] [--seconds 60] [--url URL --token T]

Without --url it starts its own server (SQLite in a temporary folder) on 127.0.0.1 and stops it at
the end. Each client loops: one in five requests starts a check (upload of the example agreement),
the others read a check it started, the list of checks, or a page (reads carry the token too:
the server needs one to read unless it runs with --public-read). At the end it waits for every
check to finish and counts: an error is any unexpected status or failed request; a lost job is a
check that was accepted (202) but is missing or not done. Exits 1 on any error or lost job.
Only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from nospy.server.auth import create_token
from nospy.server.db import connect, migrate

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = (ROOT / "examples" / "agreement.yaml").read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_server(data: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    engine, sessions = connect(f"sqlite:///{(data / 'nospy.db').resolve()}")
    migrate(engine)
    token = create_token(sessions, "load")
    engine.dispose()
    port = _free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nospy", "serve", "--data", str(data), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url, token
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.created: list[str] = []

    def record(self, op: str, seconds: float) -> None:
        with self.lock:
            self.latency[op].append(seconds)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)


def _client(url: str, token: str, until: float, stats: Stats, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - picks requests to make, not secrets
    mine: list[str] = []
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < until:
            roll = rng.random()
            if roll < 0.2 or not mine:
                op, expect = "POST /api/checks", 202
                start = time.perf_counter()
                try:
                    r = http.post("/api/checks", headers=auth, files={"agreement": ("agreement.yaml", AGREEMENT)})
                except httpx.HTTPError as exc:
                    stats.error(f"{op}: {type(exc).__name__}: {exc}")
                    continue
                if r.status_code == 202:
                    mine.append(r.json()["id"])
                    with stats.lock:
                        stats.created.append(mine[-1])
            else:
                if roll < 0.6:
                    op, path = "GET /api/checks/{id}", f"/api/checks/{rng.choice(mine)}"
                elif roll < 0.8:
                    op, path = "GET /api/checks", "/api/checks?limit=20"
                else:
                    op, path = "GET /checks/{id} (page)", f"/checks/{rng.choice(mine)}"
                expect = 200
                start = time.perf_counter()
                try:
                    r = http.get(path, headers=auth)
                except httpx.HTTPError as exc:
                    stats.error(f"{op}: {type(exc).__name__}: {exc}")
                    continue
            stats.record(op, time.perf_counter() - start)
            if r.status_code != expect:
                stats.error(f"{op}: HTTP {r.status_code}: {r.text[:200]}")


def _audit(url: str, token: str, created: list[str], wait: float) -> tuple[int, int, float]:
    """(lost, failed, seconds to drain): every accepted check must end done."""
    start = time.monotonic()
    pending = set(created)
    failed = 0
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
        while pending and time.monotonic() - start < wait:
            for check_id in list(pending):
                r = http.get(f"/api/checks/{check_id}")
                if r.status_code == 200 and r.json()["state"] in ("done", "failed"):
                    pending.discard(check_id)
                    failed += r.json()["state"] == "failed"
            if pending:
                time.sleep(0.5)
    return len(pending), failed, time.monotonic() - start


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--url", help="a running server (loopback only); default: start one")
    parser.add_argument("--token", help="API token for --url")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds to wait for queued checks at the end")
    args = parser.parse_args()

    proc = None
    tmp = None
    if args.url:
        host = urlsplit(args.url).hostname or ""
        if not (host in {"localhost", "::1"} or host.startswith("127.")):
            raise SystemExit("load goes to loopback addresses only")
        if not args.token:
            raise SystemExit("--url needs --token")
        url, token = args.url.rstrip("/"), args.token
    else:
        tmp = tempfile.TemporaryDirectory(prefix="nospy-load-")
        proc, url, token = _start_server(Path(tmp.name))
    stats = Stats()
    try:
        until = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=_client, args=(url, token, until, stats, i), daemon=True)
            for i in range(args.clients)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        lost, failed, drain = _audit(url, token, stats.created, args.drain)
    finally:
        if tmp is not None and stats.errors:
            tail = (Path(tmp.name) / "server.log").read_text(errors="replace")[-3000:]
            print(f"server log (end):\n{tail}")
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if tmp is not None:
            tmp.cleanup()

    total = sum(len(v) for v in stats.latency.values())
    print(f"{args.clients} clients for {elapsed:.1f} s on {url}: {total} requests ({total / elapsed:.0f}/s)")
    print(f"{'operation':<26} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for op, values in sorted(stats.latency.items()):
        ms = [v * 1000 for v in values]
        print(
            f"{op:<26} {len(ms):>7} {statistics.median(ms):>8.1f} {_pct(ms, 0.95):>8.1f} "
            f"{_pct(ms, 0.99):>8.1f} {max(ms):>8.1f}"
        )
    print(f"checks accepted: {len(stats.created)}; all finished {drain:.1f} s after the load stopped")
    print(f"errors: {len(stats.errors)}; lost jobs: {lost}; failed checks: {failed}")
    for text in stats.errors[:10]:
        print(f"  {text}")
    return 1 if stats.errors or lost or failed else 0


if __name__ == "__main__":
    sys.exit(main())
