"""Release manifests, find_release (the public API `nospy check` uses), tlog-proof and cosignatures."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nospy import dsse, keys
from nospy.errors import InputError, VerificationError
from nospy.ledger import find_release, verify_proof
from nospy.ledger.checkpoint import CosignerKey, cosign, open_checkpoint, parse_cosigner_key
from nospy.ledger.proof import format_proof, parse_proof
from nospy.ledger.release import entry_bytes, make_release, read_release
from nospy.ledger.storage import LogWriter, init_log

ORIGIN = "log.example/releases"


@pytest.fixture
def released(tmp_path: Path) -> tuple[Path, keys.SigningKey, keys.SigningKey, str]:
    """A log holding 300 releases; returns (log dir, log key, vendor key, digest of image 123)."""
    vendor, log_key = keys.generate("acme.example"), keys.generate(ORIGIN)
    (tmp_path / "log.skey").write_text(str(log_key))
    root = tmp_path / "log"
    init_log(root, ORIGIN, log_key, tmp_path / "log.skey", [vendor.verifier])
    entries = []
    for i in range(300):
        image = tmp_path / f"fw-{i}.bin"
        image.write_bytes(b"firmware %d" % i)
        entries.append(entry_bytes(make_release(image, vendor, "acme-rx200", f"3.2.{i}")))
    with LogWriter(root) as writer:
        writer.add(entries[:200])
        writer.add([b"not a manifest", *entries[200:]])
    return root, log_key, vendor, hashlib.sha256(b"firmware 123").hexdigest()


def test_manifest_is_an_in_toto_statement(tmp_path: Path) -> None:
    image, sbom = tmp_path / "fw.bin", tmp_path / "sbom.cdx.json"
    image.write_bytes(b"image")
    sbom.write_bytes(b"{}" * 100_000)  # a big SBOM is logged by digest only
    vendor = keys.generate("acme.example")
    env = make_release(image, vendor, "acme-rx200", "3.2.1", sbom=sbom)
    statement = json.loads(env.payload_bytes)
    assert env.payload_type == "application/vnd.in-toto+json"
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "fw.bin", "digest": {"sha256": hashlib.sha256(b"image").hexdigest()}}]
    assert statement["predicate"]["sbom"]["digest"]["sha256"] == hashlib.sha256(sbom.read_bytes()).hexdigest()
    assert len(entry_bytes(env)) < 2000
    _, st = read_release(entry_bytes(env), [vendor.verifier])
    assert st.predicate.version == "3.2.1"
    with pytest.raises(VerificationError):
        read_release(entry_bytes(env), [keys.generate("other").verifier])
    with pytest.raises(VerificationError):
        read_release(entry_bytes(env), [])
    # the same statement re-serialised (not RFC 8785) would be a second entry for one release
    loose = json.dumps(statement, indent=1).encode()
    with pytest.raises(InputError, match="canonical"):
        read_release(entry_bytes(dsse.sign(env.payload_type, loose, vendor)), [vendor.verifier])


def test_a_release_of_several_images(tmp_path: Path) -> None:
    """Each image is a subject, in the order given; a name twice, or none, is refused."""
    (tmp_path / "a").mkdir()
    main, boot, again = tmp_path / "main.img", tmp_path / "boot.img", tmp_path / "a" / "main.img"
    for path in (main, boot, again):
        path.write_bytes(path.name.encode() + str(path).encode())
    vendor = keys.generate("acme.example")
    _, st = read_release(entry_bytes(make_release([main, boot], vendor, "acme-rx200", "4.0")), [vendor.verifier])
    assert [(a.name, a.sha256) for a in st.subject] == [
        ("main.img", hashlib.sha256(main.read_bytes()).hexdigest()),
        ("boot.img", hashlib.sha256(boot.read_bytes()).hexdigest()),
    ]
    with pytest.raises(InputError, match=r"each image once: main\.img"):
        make_release([main, boot, again], vendor, "acme-rx200", "4.0")
    with pytest.raises(InputError, match="1 to 64 images, not 0"):
        make_release([], vendor, "acme-rx200", "4.0")


def test_find_release_and_tlog_proof(released: tuple[Path, keys.SigningKey, keys.SigningKey, str]) -> None:
    root, log_key, vendor, digest = released
    ev = find_release(root, log_key.verifier, digest, vendor_keys=[vendor.verifier])
    assert ev is not None
    assert (ev.index, ev.tree_size, ev.version) == (123, 301, "3.2.123")
    assert find_release(root, log_key.verifier, "0" * 64) is None
    for i in (0, 10, 199, 200, 299):  # every alignment of the digest in the base64 payload
        found = find_release(root, log_key.verifier, hashlib.sha256(b"firmware %d" % i).hexdigest())
        assert found is not None and found.version == f"3.2.{i}"
    assert find_release(root, log_key.verifier, digest, vendor_keys=[keys.generate("x").verifier]) is None
    with pytest.raises(VerificationError):
        find_release(root, keys.generate(ORIGIN).verifier, digest)
    with pytest.raises(InputError):
        find_release(root, log_key.verifier, "not hex")

    text = ev.tlog_proof()
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    again = verify_proof(text, log_key.verifier, digest, vendor_keys=[vendor.verifier])
    assert again.index == 123 and again.root == ev.root
    with pytest.raises(VerificationError):
        verify_proof(text, log_key.verifier, hashlib.sha256(b"firmware 124").hexdigest())
    tampered = text.replace("index 123", "index 122")
    with pytest.raises(VerificationError):
        verify_proof(tampered, log_key.verifier, digest)
    lines = text.split("\n")
    lines[3] = lines[4]  # a proof hash replaced
    with pytest.raises(VerificationError):
        verify_proof("\n".join(lines), log_key.verifier, digest)
    parsed = parse_proof(text)
    assert parsed.index == 123 and len(parsed.proof) == 9


def test_proof_with_witness_cosignatures(released: tuple[Path, keys.SigningKey, keys.SigningKey, str]) -> None:
    root, log_key, _, digest = released
    ev = find_release(root, log_key.verifier, digest)
    assert ev is not None
    witness = keys.generate("witness.example/w1")
    body = open_checkpoint(ev.checkpoint, [log_key.verifier]).checkpoint.body()
    cosigned = ev.checkpoint + cosign(body, witness, timestamp=1_700_000_000)
    text = ev.tlog_proof().replace(ev.checkpoint, cosigned)
    cosigner = CosignerKey.from_verifier(witness.verifier)
    assert parse_cosigner_key(str(cosigner)) == cosigner
    assert str(cosigner).split("+")[1] != witness.verifier.label.split("+")[1]  # 0x04 key ID differs
    verify_proof(text, log_key.verifier, digest, cosigners=[cosigner], quorum=1)
    with pytest.raises(VerificationError, match="cosignatures"):
        verify_proof(ev.tlog_proof(), log_key.verifier, digest, cosigners=[cosigner], quorum=1)
    forged = cosigned[:-10] + ("A" if cosigned[-10] != "A" else "B") + cosigned[-9:]
    with pytest.raises(VerificationError):
        open_checkpoint(forged, [log_key.verifier], cosigners=[cosigner], quorum=1)


def test_cosigned_message_is_the_spec_format() -> None:
    """tlog-cosignature: 'cosignature/v1', 'time <ts>', then the checkpoint body, signed by Ed25519."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    witness = keys.generate("witness.example/w1")
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    line = cosign(body, witness, timestamp=1679315147)
    import base64

    raw = base64.b64decode(line.split(" ")[2])
    assert raw[:4] == keys.key_id("witness.example/w1", 0x04, witness.verifier.public)
    assert int.from_bytes(raw[4:12], "big") == 1679315147
    Ed25519PublicKey.from_public_bytes(witness.verifier.public).verify(
        raw[12:], b"cosignature/v1\ntime 1679315147\n" + body.encode()
    )


@settings(max_examples=50, deadline=None)
@given(
    st.integers(0, (1 << 63) - 1),
    st.lists(st.binary(min_size=32, max_size=32), max_size=64),
    st.one_of(st.none(), st.binary(max_size=300)),
)
def test_tlog_proof_round_trip(index: int, hashes: list[bytes], extra: bytes | None) -> None:
    checkpoint = "origin\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n\u2014 origin AAAA\n"
    parsed = parse_proof(format_proof(index, hashes, checkpoint, extra=extra))
    assert (parsed.index, list(parsed.proof), parsed.checkpoint, parsed.extra) == (index, hashes, checkpoint, extra)


@given(st.text(min_size=1, max_size=50).filter(lambda o: "\n" not in o), st.integers(0, (1 << 63) - 1))
def test_checkpoint_body_round_trip(origin: str, size: int) -> None:
    from nospy.ledger.checkpoint import Checkpoint, parse_body

    cp = Checkpoint(origin, size, hashlib.sha256(origin.encode()).digest())
    assert parse_body(cp.body()) == cp


def test_spec_example_cosignature_layout() -> None:
    """The tlog-cosignature spec's example line: key ID, then the big-endian timestamp of its message."""
    line = "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    raw = base64.b64decode(line)
    assert len(raw) == 4 + 8 + 64
    assert int.from_bytes(raw[4:12], "big") == 1679315147  # "time 1679315147" in the spec's signed message
