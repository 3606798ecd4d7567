from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from nospy.cli import app, run


def _walk(command: object, path: list[str]) -> list[list[str]]:
    paths = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += _walk(sub, [*path, name])
    return paths


def test_help_on_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    paths = _walk(typer.main.get_command(app), [])
    assert ["agreement", "verify"] in paths and ["demo"] in paths
    for path in paths:
        assert run([*path, "--help"]) == 0, path
        out = capsys.readouterr().out
        assert "Usage" in out and "--help" in out, path


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.startswith("nospy ")


def test_bad_usage_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["no-such-command"]) == 2
    assert run(["agreement", "sign"]) == 2
    capsys.readouterr()


def test_issue_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["keys", "generate", "acme"]) == 0
    assert run(["keys", "generate", "bharat"]) == 0
    assert oct((tmp_path / "acme.skey").stat().st_mode & 0o777) == "0o600"
    assert run(["keys", "generate", "acme"]) == 2  # never overwrites a key silently
    assert run(["agreement", "init", "-o", "agreement.yaml"]) == 0
    assert run(["agreement", "sign", "agreement.yaml", "--key", "acme.skey", "-o", "agreement.dsse.json"]) == 0
    assert run(["agreement", "sign", "agreement.dsse.json", "--key", "bharat.skey"]) == 0
    capsys.readouterr()
    assert run(["agreement", "verify", "agreement.dsse.json", "--key", "acme.vkey", "--key", "bharat.vkey"]) == 0
    assert "verified" in capsys.readouterr().out
    assert run(["agreement", "show", "agreement.dsse.json"]) == 0
    shown = capsys.readouterr().out
    assert "acme+" in shown and "bharat+" in shown and "placement" in shown
    assert run(["agreement", "show", "agreement.dsse.json", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "acme-rx200-in-2026"


def test_verify_failures_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("acme", "bharat", "stranger"):
        assert run(["keys", "generate", name]) == 0
    run(["agreement", "init", "-o", "a.yaml"])
    run(["agreement", "sign", "a.yaml", "--key", "acme.skey", "-o", "a.dsse.json"])
    capsys.readouterr()
    # customer has not signed yet
    assert run(["agreement", "verify", "a.dsse.json", "--key", "acme.vkey", "--key", "bharat.vkey"]) == 1
    assert "bharat" in capsys.readouterr().err
    assert run(["agreement", "verify", "a.dsse.json", "--key", "stranger.vkey"]) == 1
    assert run(["agreement", "verify", "a.dsse.json"]) == 1
    assert "no verifier key" in capsys.readouterr().err
    # one byte of the payload changed
    env = json.loads((tmp_path / "a.dsse.json").read_text())
    payload = base64.b64decode(env["payload"]).replace(b'"IN"', b'"SG"')
    env["payload"] = base64.b64encode(payload).decode()
    (tmp_path / "t.dsse.json").write_text(json.dumps(env))
    assert run(["agreement", "verify", "t.dsse.json", "--key", "acme.vkey"]) == 1
    assert "does not match the payload" in capsys.readouterr().err
    env["signatures"][0]["sig"] = "@@@"
    (tmp_path / "m.dsse.json").write_text(json.dumps(env))
    assert run(["agreement", "verify", "m.dsse.json", "--key", "acme.vkey"]) == 1
    assert "malformed signature" in capsys.readouterr().err


def test_bad_inputs_exit_2_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nospy: 1\nid: x\ntitle: T\nvendor: V\ncustomer: C\nservices:\n  - {name: s, port: 0}\n")
    assert run(["agreement", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:7: services[0].port: must be 1-65535" in err
    assert "Traceback" not in err
    assert run(["agreement", "verify", str(bad), "--key", str(tmp_path / "none.vkey")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_console_script_and_demo(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("nospy")
    assert exe.exists(), "the nospy console script is not installed"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [str(exe), "demo", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stdout and "tamper check" in done.stdout
    assert (tmp_path / "out" / "agreement.dsse.json").is_file()
    bad = subprocess.run(
        [str(exe), "agreement", "show", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_console_script_ls_ends_with_everything_written(
    shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``nospy ls`` as a command ends its process at once (`process_end`): its output, a pipe's worth
    many times over, and its issues are still written whole, and the exit code is the command's; an
    output that cannot be written is an error (exit 2), a reader that stops early is not."""
    exe = Path(sys.executable).with_name("nospy")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as for users
    image = shared / "firmware" / "trendnet-tew733gr-rootfs.squashfs"
    done = subprocess.run(
        [str(exe), "ls", str(image), "--format", "json"], capture_output=True, check=False, timeout=120, env=env
    )
    assert run(["ls", str(image), "--format", "json"]) == 0
    assert done.returncode == 0 and done.stdout.decode() == capsys.readouterr().out
    assert len(done.stdout) > 1 << 18
    blob = tmp_path / "notes.txt"  # no container: shown as one file, with an issue on stderr
    blob.write_text("no image here\n" * 100)
    done = subprocess.run([str(exe), "ls", str(blob)], capture_output=True, check=False, timeout=120, env=env)
    assert done.returncode == 0 and b"not unpacked:" in done.stderr and done.stdout.count(b"\n") >= 3
    with Path("/dev/full").open("wb") as full:  # the listing is held in stdout's buffer until the end
        done = subprocess.run([str(exe), "ls", str(blob)], stdout=full, stderr=subprocess.PIPE, check=False, env=env)
    assert done.returncode == 2 and b"the output could not be written" in done.stderr
    reader = subprocess.Popen(["true"], stdin=subprocess.PIPE)  # ends without reading
    reader.wait()
    assert reader.stdin is not None
    done = subprocess.run(
        [str(exe), "ls", str(blob)], stdout=reader.stdin, stderr=subprocess.PIPE, check=False, env=env
    )
    reader.stdin.close()
    assert done.returncode == 0, done.stderr
