"""``nospy release``, ``nospy log ...`` and ``nospy witness serve`` end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nospy.cli import run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    for name in ("acme.example", "log.example_fw", "intruder"):
        assert run(["keys", "generate", name]) == 0
    (tmp_path / "fw.bin").write_bytes(b"firmware 3.2.1")
    (tmp_path / "other.bin").write_bytes(b"other firmware")
    return tmp_path


def test_release_log_audit_prove_verify(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(["release", "fw.bin", "--key", "acme.example.skey", "--product", "acme-rx200", "--version", "3.2.1"]) == 0
    )
    assert (workdir / "fw.bin.release.json").is_file()
    assert (
        run(["release", "other.bin", "-k", "intruder.skey", "--product", "p", "--version", "1", "-o", "bad.json"]) == 0
    )
    init = ["log", "init", "log", "--origin", "log.example_fw", "--key", "log.example_fw.skey"]
    assert run([*init, "--trust", "acme.example.vkey"]) == 0
    assert run(["log", "add", "log", "fw.bin.release.json"]) == 0
    assert "index 0" in capsys.readouterr().out
    assert run(["log", "add", "log", "bad.json"]) == 1  # not signed by a trusted vendor
    assert run(["log", "audit", "log", "--key", "log.example_fw.vkey"]) == 0
    assert "size 1" in capsys.readouterr().out
    assert run(["log", "prove", "log", "--image", "fw.bin", "-o", "fw.tlog-proof"]) == 0
    assert (workdir / "fw.tlog-proof").read_text().startswith("c2sp.org/tlog-proof@v1\n")
    assert run(["log", "verify", "fw.tlog-proof", "--key", "log.example_fw.vkey", "--image", "fw.bin"]) == 0
    assert run(["log", "verify", "fw.tlog-proof", "--key", "log.example_fw.vkey", "--image", "other.bin"]) == 1
    assert run(["log", "prove", "log", "--image", "other.bin", "-o", "x.tlog-proof"]) == 1
    assert run(["log", "prove", "log", "--sha256", "zz", "-o", "x.tlog-proof"]) == 2
    tile = workdir / "log" / "tile" / "0" / "000.p" / "1"
    tile.write_bytes(bytes([tile.read_bytes()[0] ^ 1]) + tile.read_bytes()[1:])
    assert run(["log", "audit", "log", "--key", "log.example_fw.vkey"]) == 1
    assert run(["log", "audit", "missing-dir", "--key", "log.example_fw.vkey"]) == 2


def test_log_init_with_witnesses(workdir: Path) -> None:
    base = ["log", "init", "log", "--origin", "log.example_fw", "--key", "log.example_fw.skey"]
    assert run([*base, "--witness", "no-equals-sign"]) == 2
    assert not (workdir / "log").exists()
    assert run([*base, "--witness", "http://127.0.0.1:9/w=intruder.vkey"]) == 0
    config = json.loads((workdir / "log" / ".nospy" / "config.json").read_text())
    assert config["witnesses"][0]["url"] == "http://127.0.0.1:9/w"
    assert config["witnesses"][0]["key"].startswith("intruder+")
    assert run(["log", "init", "log", "--origin", "x", "--key", "log.example_fw.skey"]) == 2  # not empty


def _wait(url: str) -> bytes:
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - local test server
                return bytes(resp.read())
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_log_serve_and_witness_serve_commands(workdir: Path) -> None:
    assert run(["log", "init", "log", "--origin", "log.example_fw", "--key", "log.example_fw.skey"]) == 0
    log_port, witness_port = _free_port(), _free_port()
    env = {**os.environ, "NOSPY_LOG_TOKEN": "a-long-enough-test-token"}
    nospy = [sys.executable, "-m", "nospy"]
    procs = [
        subprocess.Popen([*nospy, "log", "serve", "log", "--port", str(log_port)], env=env, stdout=subprocess.DEVNULL),
        subprocess.Popen(
            [
                *nospy,
                "witness",
                "serve",
                "--key",
                "intruder.skey",
                "--log",
                "log.example_fw.vkey",
                "--port",
                str(witness_port),
            ],
            stdout=subprocess.DEVNULL,
        ),
    ]
    try:
        checkpoint = _wait(f"http://127.0.0.1:{log_port}/checkpoint")
        assert checkpoint.startswith(b"log.example_fw\n0\n")
        req = urllib.request.Request(
            f"http://127.0.0.1:{witness_port}/add-checkpoint", data=b"old 0\n\n" + checkpoint, method="POST"
        )
        for _ in range(100):
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - local test server
                    assert resp.read().startswith("\u2014 intruder ".encode())
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("witness did not answer")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
