"""The transparency-log pages of `nospy serve --log DIR --log-key VKEY`, against a real log and server."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from nospy import keys
from nospy.ledger.checkpoint import CosignerKey
from nospy.ledger.release import entry_bytes, make_release
from nospy.ledger.storage import LogWriter, init_log
from nospy.ledger.witness import Witness
from serverlib import running

ORIGIN = "log.example/releases"


def _log(tmp_path: Path, releases: int) -> tuple[Path, Path, keys.SigningKey, list[str]]:
    vendor, log_key = keys.generate("acme.example"), keys.generate(ORIGIN)
    (tmp_path / "log.skey").write_text(str(log_key))
    vkey = tmp_path / "log.vkey"
    vkey.write_text(str(log_key.verifier))
    root = tmp_path / "log"
    init_log(root, ORIGIN, log_key, tmp_path / "log.skey", [vendor.verifier])
    signers = []
    with LogWriter(root) as writer:
        for i in range(releases):
            image = tmp_path / f"fw-{i}.bin"
            image.write_bytes(f"image {i}".encode())
            env = make_release(image, vendor, "acme-rx200", f"3.2.{i}")
            writer.add([entry_bytes(env)])
            signers.append(env.signatures[0].keyid)
    return root, vkey, vendor, signers


def test_checkpoint_entries_and_verified_entry(tmp_path: Path) -> None:
    root, vkey, _, signers = _log(tmp_path, 60)
    env = {"NOSPY_LOG": str(root), "NOSPY_LOG_KEY": str(vkey)}
    with running(tmp_path / "data", env) as server:
        index = httpx.get(f"{server.url}/login", timeout=10)
        assert 'href="/log"' in index.text
        first = httpx.get(f"{server.url}/log", timeout=30)
        assert first.status_code == 200
        page = html.unescape(first.text)
        assert ORIGIN in page and '<td id="cp-size">60</td>' in page
        cp = (root / "checkpoint").read_text().split("\n")
        assert cp[2] in page  # the root hash, as the checkpoint carries it
        assert page.count('<a href="/log/entries/') == 50 and "3.2.49" in page and "3.2.50" not in page
        assert signers[0] in page and 'id="next"' in page
        second = html.unescape(httpx.get(f"{server.url}/log?offset=50&limit=50", timeout=30).text)
        assert "3.2.59" in second and 'id="next"' not in second and 'id="prev"' in second

        one = httpx.get(f"{server.url}/log/entries/7", timeout=30)
        assert one.status_code == 200 and 'id="proof-ok"' in one.text and "3.2.7" in one.text
        digest = hashlib.sha256(b"image 7").hexdigest()
        assert digest in one.text
        assert one.text.count("<li><code>") == 6  # ceil(log2(60)) hashes for a leaf in a 60-leaf tree
        assert httpx.get(f"{server.url}/log/entries/60", timeout=10).status_code == 404
        assert httpx.get(f"{server.url}/log/entries/x", timeout=10).status_code == 422


def test_checkpoint_that_does_not_verify_is_an_error(tmp_path: Path) -> None:
    root, _, _, _ = _log(tmp_path, 3)
    stranger = tmp_path / "stranger.vkey"
    stranger.write_text(str(keys.generate(ORIGIN).verifier))
    with running(tmp_path / "data", {"NOSPY_LOG": str(root), "NOSPY_LOG_KEY": str(stranger)}) as server:
        for path in ("/log", "/log/entries/0"):
            r = httpx.get(f"{server.url}{path}", timeout=30)
            assert r.status_code == 502 and 'id="log-error"' in r.text
            assert "cp-root" not in r.text and "3.2." not in r.text and 'id="proof-ok"' not in r.text


def test_tampered_entry_fails_its_proof(tmp_path: Path) -> None:
    root, vkey, _, _ = _log(tmp_path, 3)
    bundle = root / "tile" / "entries" / "000.p" / "3"
    data = bytearray(bundle.read_bytes())
    at = data.rindex(b'"sig":"') + 7  # one character of the last entry's signature: same length, new leaf
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    bundle.write_bytes(bytes(data))
    with running(tmp_path / "data", {"NOSPY_LOG": str(root), "NOSPY_LOG_KEY": str(vkey)}) as server:
        r = httpx.get(f"{server.url}/log/entries/2", timeout=30)
        assert r.status_code == 502 and 'id="log-error"' in r.text and 'id="proof-ok"' not in r.text


def test_no_log_configured_and_log_without_key(tmp_path: Path) -> None:
    with running(tmp_path / "data") as server:
        assert httpx.get(f"{server.url}/log", timeout=10).status_code == 404
        assert 'href="/log"' not in httpx.get(f"{server.url}/login", timeout=10).text
    out = subprocess.run(
        [sys.executable, "-m", "nospy", "serve", "--data", str(tmp_path / "d"), "--log", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "give both or neither" in out.stderr


def test_cosignatures_are_verified_against_the_witness_keys(tmp_path: Path) -> None:
    """A real witness (tlog-witness add-checkpoint) cosigns the checkpoint; the page verifies each
    cosignature by the witness keys given to the server."""
    root, vkey, _, _ = _log(tmp_path, 3)
    log_key = keys.parse_verifier_key(vkey.read_text())
    note = (root / "checkpoint").read_text()
    good, forged, stranger = (keys.generate(f"witness.example/{n}") for n in ("w1", "w2", "w3"))
    lines = []
    for witness_key in (good, forged, stranger):
        witness = Witness(witness_key, [log_key], tmp_path / f"{witness_key.name.rsplit('/', 1)[1]}.json")
        answer = witness.add_checkpoint(b"old 0\n\n" + note.encode())
        assert answer.status == 200, answer.body
        lines.append(answer.body.decode())
    # w2's cosignature with one byte of its signature changed: same key ID, signature does not verify
    name, blob = lines[1].rstrip("\n").split(" ")[1:]
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    lines[1] = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
    (root / "checkpoint").write_text(note + "".join(lines))
    witness_files = []
    for witness_key in (good, forged):  # w3 is not given to the server
        path = tmp_path / f"{witness_key.name.rsplit('/', 1)[1]}.cosigner.vkey"
        path.write_text(f"{CosignerKey.from_verifier(witness_key.verifier)}\n")
        witness_files.append(str(path))
    env = {"NOSPY_LOG": str(root), "NOSPY_LOG_KEY": str(vkey), "NOSPY_WITNESS_KEYS": os.pathsep.join(witness_files)}
    with running(tmp_path / "data", env) as server:
        r = httpx.get(f"{server.url}/log", timeout=30)
        assert r.status_code == 200
        rows = re.findall(r'<tr class="cosig"><td><code>([^<]+)</code>.*?data-status="([^"]+)"', r.text, re.S)
        assert [(n, html.unescape(s)) for n, s in rows] == [
            ("witness.example/w1", "verified"),
            ("witness.example/w2", "bad signature"),
            ("witness.example/w3", "unknown key"),
        ]
        assert "cosignature by witness.example/w2 does not verify" in r.text
        assert "Checked against 2 witness keys" in r.text
    # a witness key file that is not a key stops the server at start, with the reason
    bad = tmp_path / "bad.vkey"
    bad.write_text("not a key\n")
    args = ["--data", str(tmp_path / "d2"), "--log", str(root), "--log-key", str(vkey), "--witness-key", str(bad)]
    out = subprocess.run(
        [sys.executable, "-m", "nospy", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2 and "bad.vkey" in out.stderr and "Traceback" not in out.stderr
