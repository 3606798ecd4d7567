"""The log and witness HTTP servers, started for real on 127.0.0.1 with a free port."""

from __future__ import annotations

import base64
import gzip
import hashlib
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nospy import keys
from nospy.ledger import audit_log, find_release, open_source
from nospy.ledger.checkpoint import CosignerKey, open_checkpoint, sign_checkpoint
from nospy.ledger.interface import HttpSource
from nospy.ledger.release import entry_bytes, make_release
from nospy.ledger.server import LogServer, WitnessServer
from nospy.ledger.storage import init_log
from nospy.ledger.tiles import TileReader
from nospy.ledger.witness import Witness

ORIGIN = "log.example/served"
TOKEN = "s3cret-token-for-tests"


def _request(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - a local test server
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


class Served:
    def __init__(self, tmp: Path) -> None:
        self.vendor, self.log_key = keys.generate("acme.example"), keys.generate(ORIGIN)
        (tmp / "log.skey").write_text(str(self.log_key))
        self.root = tmp / "log"
        init_log(self.root, ORIGIN, self.log_key, tmp / "log.skey", [self.vendor.verifier])
        self.tmp = tmp
        self.server = LogServer(self.root, TOKEN)
        self.server.start()

    def manifest(self, i: int, key: keys.SigningKey | None = None) -> bytes:
        image = self.tmp / f"fw-{i}.bin"
        image.write_bytes(b"firmware %d" % i)
        return entry_bytes(make_release(image, key or self.vendor, "acme-rx200", f"1.{i}"))

    def add(self, body: bytes, token: str = TOKEN) -> tuple[int, str, bytes]:
        return _request(f"{self.server.url}/add", body, {"Authorization": f"Bearer {token}"})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    try:
        yield s
    finally:
        s.server.close()


def test_reads_and_guarded_writes(served: Served) -> None:
    url = served.server.url
    status, ctype, body = _request(f"{url}/checkpoint")
    assert status == 200 and ctype.startswith("text/plain") and body.startswith(ORIGIN.encode())
    assert _request(f"{url}/.nospy/config.json")[0] == 404
    assert _request(f"{url}/tile/0/../../.nospy/config.json")[0] == 404
    assert served.add(served.manifest(1), token="wrong")[0] == 401
    assert _request(f"{url}/add", served.manifest(1))[0] == 401
    assert served.add(b"{" * 70_000)[0] == 413
    assert served.add(b"not json")[0] == 400
    assert served.add(served.manifest(2, keys.generate("intruder")))[0] == 403
    status, _, body = served.add(served.manifest(3))
    assert (status, body) == (200, b'{"index": 0}\n')
    assert served.add(served.manifest(3))[2] == b'{"index": 0}\n'  # deduplicated
    status, ctype, body = _request(f"{url}/tile/entries/000.p/1")
    assert status == 200 and ctype == "application/octet-stream" and body[2:] == served.manifest(3)
    req = urllib.request.Request(f"{url}/tile/entries/000.p/1", headers={"Accept-Encoding": "gzip"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - a local test server
        assert resp.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(resp.read()) == body
    assert HttpSource(url).read("tile/entries/000.p/1") == body  # asks for gzip, inflates


def test_refused_post_closes_the_connection(served: Served) -> None:
    """A POST answered before its body is read (bad token, unknown path, too large) ends the
    keep-alive connection, so the body is never taken for a second request."""
    host, port = served.server.httpd.server_address[:2]
    inner = b"GET /checkpoint HTTP/1.1\r\nHost: log\r\n\r\n"
    for path, token in (("/add", "wrong"), ("/elsewhere", TOKEN)):
        head = f"POST {path} HTTP/1.1\r\nHost: log\r\nAuthorization: Bearer {token}\r\n"
        request = head.encode() + b"Content-Length: %d\r\n\r\n" % len(inner) + inner
        with socket.create_connection((str(host), int(port)), timeout=10) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):  # the server closes: recv returns b""
                answer += chunk
        assert answer.count(b"HTTP/1.1 ") == 1, answer
        assert answer.startswith((b"HTTP/1.1 401", b"HTTP/1.1 404"))


def test_concurrent_writers_then_audit_and_find_over_http(served: Served) -> None:
    manifests = [served.manifest(i) for i in range(120)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(served.add, manifests))
    indices = sorted(int(body.split(b":")[1].strip(b" }\n")) for status, _, body in results if status == 200)
    assert indices == list(range(120))
    source = HttpSource(served.server.url)
    result = audit_log(source, served.log_key.verifier, origin=ORIGIN)
    assert result.checkpoint.size == 120
    ev = find_release(source, served.log_key.verifier, hashlib.sha256(b"firmware 77").hexdigest())
    assert ev is not None and ev.version == "1.77"


def test_witness_add_checkpoint_status_codes(served: Served, tmp_path: Path) -> None:
    for i in range(5):
        served.add(served.manifest(i))
    witness_key = keys.generate("witness.example/w1")
    witness = WitnessServer(Witness(witness_key, [served.log_key.verifier], tmp_path / "witness.json"))
    witness.start()
    cosigner = CosignerKey.from_verifier(witness_key.verifier)
    try:
        url = f"{witness.url}/add-checkpoint"
        note = (served.root / "checkpoint").read_text()

        def post(old: int, proof: list[bytes], cp: str) -> tuple[int, str, bytes]:
            lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
            return _request(url, ("\n".join(lines) + "\n\n" + cp).encode())

        status, _, body = post(0, [], note)
        assert status == 200
        assert open_checkpoint(note + body.decode(), [served.log_key.verifier], cosigners=[cosigner], quorum=1)
        status, ctype, body = post(0, [], note)
        assert (status, ctype, body) == (409, "text/x.tlog.size", b"5\n")
        assert post(5, [], note)[0] == 200  # same size, same root
        with ThreadPoolExecutor(16) as pool:  # concurrent writers: batched by the sequencer
            assert {r[0] for r in pool.map(served.add, [served.manifest(i) for i in range(5, 300)])} == {200}
        new_note = (served.root / "checkpoint").read_text()
        reader = TileReader(open_source(served.root).read, 300)
        proof = reader.consistency_proof(5)
        assert post(5, proof[:-1], new_note)[0] == 422
        assert post(5, [bytes(32), *proof[1:]], new_note)[0] == 422
        assert post(301, [], new_note)[0] == 400
        assert post(5, [], "not a checkpoint\n")[0] == 404
        assert _request(url, b"garbage")[0] == 400
        impostor = keys.generate(ORIGIN)
        cp = open_checkpoint(new_note, [served.log_key.verifier]).checkpoint
        assert post(5, proof, sign_checkpoint(cp, impostor))[0] == 403
        # racing submissions from the same old size: exactly one wins, the rest learn the new size
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: post(5, proof, new_note), range(6)))
        assert sorted(a[0] for a in answers) == [200] + [409] * 5
        assert {a[2] for a in answers if a[0] == 409} == {b"300\n"}
        status, _, body = next(a for a in answers if a[0] == 200)
        open_checkpoint(new_note + body.decode(), [served.log_key.verifier], cosigners=[cosigner], quorum=1)
        # same size as the latest cosigned checkpoint, but another root: a split view
        fork = sign_checkpoint(cp.__class__(cp.origin, cp.size, bytes(32)), served.log_key)
        assert post(300, [], fork)[0] == 409
        # the state survives a restart
        again = Witness(witness_key, [served.log_key.verifier], tmp_path / "witness.json")
        assert again.add_checkpoint(b"old 0\n\n" + new_note.encode()).body == b"300\n"
    finally:
        witness.close()


def test_log_gets_its_checkpoints_cosigned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nospy.ledger.storage import LogWriter

    witness_key, log_key = keys.generate("witness.example/w2"), keys.generate(ORIGIN)
    cosigner = CosignerKey.from_verifier(witness_key.verifier)
    witness = WitnessServer(Witness(witness_key, [log_key.verifier], tmp_path / "witness.json"))
    witness.start()
    try:
        (tmp_path / "log.skey").write_text(str(log_key))
        root = tmp_path / "log"
        init_log(root, ORIGIN, log_key, tmp_path / "log.skey", [], witnesses=[(witness.url, cosigner)])
        for rounds in range(2):  # a new writer does not know the witness's size: it learns it from a 409
            with LogWriter(root) as writer:
                for i in range(3):
                    writer.add([b"round %d batch %d entry %d" % (rounds, i, k) for k in range(100)])
                    note = (root / "checkpoint").read_text()
                    signed = open_checkpoint(note, [log_key.verifier], cosigners=[cosigner], quorum=1)
                    assert signed.checkpoint.size == writer.size
        assert audit_log(open_source(root), log_key.verifier).checkpoint.size == 600
    finally:
        witness.close()
    # a witness that is down leaves the checkpoint uncosigned but never blocks the log
    with LogWriter(root) as writer:
        writer.add([b"while the witness is down"])
    assert "no cosignature" in capsys.readouterr().err
    assert audit_log(open_source(root), log_key.verifier).checkpoint.size == 601
