"""The log writer and the auditor: a log laid out by hand from the C2SP rules audits, one changed
byte anywhere fails the audit, entries are deduplicated, and audits check consistency over time."""

from __future__ import annotations

import base64
import hashlib
import shutil
from pathlib import Path

import pytest

from nospy import keys
from nospy._fileio import write_atomic
from nospy.errors import InputError, VerificationError
from nospy.ledger import audit_log, merkle, open_source
from nospy.ledger.checkpoint import Checkpoint, cosign, open_checkpoint, sign_checkpoint
from nospy.ledger.storage import LogWriter, init_log
from nospy.ledger.tiles import TileReader, read_bundle

ORIGIN = "log.example/nospy-test"


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written out independently of nospy.ledger."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _spec_index(n: int) -> str:
    """tlog-tiles: zero-padded 3-digit path elements, all but the last prefixed with x."""
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def _write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def _hand_built_log(root: Path, key: keys.SigningKey, size: int) -> bytes:
    """A log as another tlog-tiles implementation would write it, from the spec's rules only."""
    entries = [f"entry {i}".encode() for i in range(size)]
    leaves = [hashlib.sha256(b"\x00" + e).digest() for e in entries]
    for n in range(-(-size // 256)):
        chunk = entries[n * 256 : (n + 1) * 256]
        suffix = "" if len(chunk) == 256 else f".p/{len(chunk)}"
        _write(root, f"tile/entries/{_spec_index(n)}{suffix}", b"".join(len(e).to_bytes(2, "big") + e for e in chunk))
    level = 0
    while size >= 256**level:
        span = 256**level  # leaves per hash at this level
        count = size // span  # complete hashes at this level
        for n in range(-(-count // 256)):
            width = min(256, count - n * 256)
            hashes = [_mth(leaves[(n * 256 + i) * span : (n * 256 + i + 1) * span]) for i in range(width)]
            suffix = "" if width == 256 else f".p/{width}"
            _write(root, f"tile/{level}/{_spec_index(n)}{suffix}", b"".join(hashes))
        level += 1
    root_hash = _mth(leaves)
    body = f"{ORIGIN}\n{size}\n{base64.b64encode(root_hash).decode()}\n"
    # other logs carry cosignatures from witnesses the auditor does not know: they are ignored
    witness = keys.generate("witness.example/unknown")
    _write(root, "checkpoint", (keys.sign_note(body, [key]) + cosign(body, witness)).encode())
    return root_hash


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keys.SigningKey]:
    root = tmp_path_factory.mktemp("other-implementation")
    key = keys.generate(ORIGIN)
    _hand_built_log(root, key, 70_000)
    return root, key


def test_log_from_the_spec_rules_audits(hand_built: tuple[Path, keys.SigningKey]) -> None:
    root, key = hand_built
    # the spec's own census of the files of a size-70,000 tree
    assert sorted(p.name for p in (root / "tile" / "2").rglob("*")) == ["000.p", "1"]
    assert (root / "tile/0/273.p/112").is_file() and (root / "tile/1/001.p/17").is_file()
    result = audit_log(open_source(root), key.verifier, origin=ORIGIN)
    assert result.checkpoint.size == 70_000
    assert result.files_checked == 2 * 274 + 2 + 1  # bundles and level-0 tiles, level 1, level 2
    reader = TileReader(open_source(root).read, 70_000)
    for index in (0, 255, 256, 65_535, 65_536, 69_999):
        proof = reader.inclusion_proof(index)
        merkle.verify_inclusion(
            index, 70_000, merkle.leaf_hash(f"entry {index}".encode()), proof, result.checkpoint.root
        )
    # a tree seen before the log grew: its partial tiles are gone, the full ones are read instead
    older = TileReader(open_source(root).read, 1_000)
    assert not (root / "tile/0/003.p/232").exists()
    consistency = reader.consistency_proof(1_000)
    merkle.verify_consistency(1_000, 70_000, consistency, older.root(), result.checkpoint.root)
    with pytest.raises(InputError, match=r"tile/0/273\.p/111.*; nor its full tile: .*tile/0/273"):
        TileReader(open_source(root).read, 69_999).tile(0, 273)
    # and the entries of such a tree, from the full bundle's first ones
    assert read_bundle(open_source(root).read, 3, 1_000) == [f"entry {i}".encode() for i in range(768, 1_000)]
    with pytest.raises(InputError, match=r"tile/entries/273\.p/111.*; nor its full tile"):
        read_bundle(open_source(root).read, 273, 69_999)


@pytest.mark.parametrize(
    "rel",
    ["checkpoint", "tile/0/x001/x000", "tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1", "tile/entries/137"],
)
def test_hand_built_log_with_a_changed_byte_fails(hand_built: tuple[Path, keys.SigningKey], rel: str) -> None:
    root, key = hand_built
    if rel == "tile/0/x001/x000":
        rel = "tile/0/100"
    path = root / rel
    original = path.read_bytes()
    try:
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0x01
        path.write_bytes(bytes(changed))
        with pytest.raises(VerificationError):
            audit_log(open_source(root), key.verifier, origin=ORIGIN)
    finally:
        path.write_bytes(original)


def _new_log(tmp_path: Path) -> tuple[Path, keys.SigningKey]:
    key = keys.generate(ORIGIN)
    key_path = tmp_path / "log.skey"
    key_path.write_text(str(key))
    root = tmp_path / "log"
    init_log(root, ORIGIN, key, key_path, [])
    return root, key


def test_writer_batches_dedup_and_matches_the_spec_layout(tmp_path: Path) -> None:
    root, key = _new_log(tmp_path)
    with LogWriter(root) as writer:
        assert writer.add([b"a", b"b", b"a"]) == [0, 1, 0]  # duplicates inside a batch
        assert writer.add([f"entry {i}".encode() for i in range(70_000)])[:3] == [2, 3, 4]
        assert writer.add([b"b", b"new"]) == [1, 70_002]  # duplicates of logged entries
    with LogWriter(root) as writer:  # the dedup index is rebuilt from the tiles
        assert writer.add([b"entry 69999", b"newer"]) == [70_001, 70_003]
        assert writer.size == 70_004
    result = audit_log(open_source(root), key.verifier)
    assert result.checkpoint.size == 70_004
    # the same entries in another tree, built from the spec's rules alone, give the same root
    other = tmp_path / "other"
    entries = [b"a", b"b"] + [f"entry {i}".encode() for i in range(70_000)] + [b"new", b"newer"]
    leaves = [hashlib.sha256(b"\x00" + e).digest() for e in entries]
    assert _mth(leaves) == result.checkpoint.root
    del other


def test_only_one_writer(tmp_path: Path) -> None:
    root, _ = _new_log(tmp_path)
    with LogWriter(root), pytest.raises(InputError, match="another process"):
        LogWriter(root)


def test_entry_limit(tmp_path: Path) -> None:
    root, _ = _new_log(tmp_path)
    with LogWriter(root) as writer, pytest.raises(InputError, match="65,535"):
        writer.add([b"x" * 65_536])


def _small_log(tmp_path: Path) -> tuple[Path, keys.SigningKey]:
    root, key = _new_log(tmp_path)
    with LogWriter(root) as writer:
        for batch in (3, 300, 10, 1):  # several checkpoints: older partial tiles stay in the layout
            writer.add([f"{writer.size + i}".encode() * 3 for i in range(batch)])
    return root, key


def test_one_changed_byte_anywhere_fails_the_audit(tmp_path: Path) -> None:
    root, key = _small_log(tmp_path)
    audit_log(open_source(root), key.verifier)
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".nospy" not in p.parts)
    assert len(files) >= 10
    flips = 0
    for path in files:
        original = path.read_bytes()
        for pos in sorted({0, 1, len(original) // 3, len(original) // 2, len(original) - 2, len(original) - 1}):
            changed = bytearray(original)
            changed[pos] ^= 0x20
            path.write_bytes(bytes(changed))
            with pytest.raises(VerificationError):
                audit_log(open_source(root), key.verifier)
            flips += 1
        path.write_bytes(original)
    assert flips >= 50
    audit_log(open_source(root), key.verifier)


def test_missing_or_extra_files_fail_the_audit(tmp_path: Path) -> None:
    root, key = _small_log(tmp_path)
    stray = root / "tile" / "0" / "notes.txt"
    stray.write_text("x")
    with pytest.raises(VerificationError, match="unexpected file"):
        audit_log(open_source(root), key.verifier)
    stray.unlink()
    (root / "tile" / "0" / "000").unlink()
    with pytest.raises(VerificationError, match="missing"):
        audit_log(open_source(root), key.verifier)


def test_audit_checks_consistency_with_the_last_seen_checkpoint(tmp_path: Path) -> None:
    root, key = _small_log(tmp_path)
    state = tmp_path / "seen.checkpoint"
    assert audit_log(open_source(root), key.verifier, state=state).previous_size is None
    with LogWriter(root) as writer:
        writer.add([b"more", b"entries"])
    assert audit_log(open_source(root), key.verifier, state=state).previous_size == 314
    # a log signed by another key is not this log
    with pytest.raises(VerificationError):
        audit_log(open_source(root), keys.generate(ORIGIN).verifier, state=state)


def test_an_older_checkpoint_passes_the_audit_only_as_a_proved_prefix(tmp_path: Path) -> None:
    """A mirror serving the checkpoint before the one seen: its tree is audited, proved a prefix of the
    tree seen from the tiles, and the checkpoint seen is kept. Without those tiles, or with a tree
    that the one seen does not extend, the audit fails."""
    root, key = _small_log(tmp_path)
    state = tmp_path / "seen.checkpoint"
    audit_log(open_source(root), key.verifier, state=state)
    older = (root / "checkpoint").read_bytes()
    with LogWriter(root) as writer:
        writer.add([f"later {i}".encode() for i in range(600)])
    assert audit_log(open_source(root), key.verifier, state=state).previous_size == 314
    seen = state.read_bytes()
    mirror = tmp_path / "mirror"
    shutil.copytree(root, mirror, ignore=shutil.ignore_patterns(".nospy"))
    (mirror / "checkpoint").write_bytes(older)
    result = audit_log(open_source(mirror), key.verifier, state=state)
    assert (result.checkpoint.size, result.previous_size, result.behind) == (314, 914, True)
    assert state.read_bytes() == seen
    (mirror / "tile" / "1" / "000.p" / "3").unlink()  # a tile of the tree seen, needed for the proof
    with pytest.raises(VerificationError, match="cannot prove the two consistent"):
        audit_log(open_source(mirror), key.verifier, state=state)
    other = tmp_path / "other"
    _hand_built_log(other, key, 5)  # same origin and key, five entries the tree seen does not start with
    with pytest.raises(VerificationError):
        audit_log(open_source(other), key.verifier, state=state)
    assert state.read_bytes() == seen
    # the writer's own directory rolled back: its next append would fork the log
    (root / "checkpoint").write_bytes(older)
    with pytest.raises(VerificationError, match="its next append would sign a tree"):
        audit_log(open_source(root), key.verifier, state=state)
    assert state.read_bytes() == seen


def test_split_view_is_caught_by_the_saved_checkpoint(tmp_path: Path) -> None:
    """The log's own key signs two different trees: the second audit must fail."""
    root, key = _new_log(tmp_path)
    with LogWriter(root) as writer:
        writer.add([b"one", b"two", b"three"])
    state = tmp_path / "seen.checkpoint"
    audit_log(open_source(root), key.verifier, state=state)
    other = tmp_path / "split"
    _hand_built_log(other, key, 5)  # same origin and key, entries that do not extend the first tree
    with pytest.raises(VerificationError, match=r"consistency|root"):
        audit_log(open_source(other), key.verifier, state=state)


def test_checkpoint_parsing() -> None:
    key = keys.generate(ORIGIN)
    cp = Checkpoint(ORIGIN, 3, b"\x01" * 32, ("ext line",))
    assert open_checkpoint(sign_checkpoint(cp, key), [key.verifier]).checkpoint == cp
    for bad in ("o\n01\nAQ==\n", "o\n1\nAQ==\n", "\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", "o\n1\n"):
        with pytest.raises(InputError):
            open_checkpoint(keys.sign_note(bad, [key]), [key.verifier])
    with pytest.raises(VerificationError):
        open_checkpoint(sign_checkpoint(cp, key), [key.verifier], origin="elsewhere")


def test_a_failed_batch_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error while committing (here: the checkpoint write fails) leaves no trace."""
    from nospy.ledger import storage

    root, key = _new_log(tmp_path)
    with LogWriter(root) as writer:
        writer.add([b"first %d" % i for i in range(300)])

        def failing_write(path: Path, data: bytes, mode: int = 0o644, *, overwrite: bool = True) -> None:
            if path.name == "checkpoint":
                raise OSError(28, "No space left on device")
            storage_write(path, data, mode, overwrite=overwrite)

        storage_write = write_atomic
        monkeypatch.setattr(storage, "write_atomic", failing_write)
        with pytest.raises(OSError, match="No space"):
            writer.add([b"lost %d" % i for i in range(600)])
        monkeypatch.setattr(storage, "write_atomic", storage_write)
        assert writer.size == 300
        assert not (root / "tile" / "entries" / "001").exists()  # the failed batch's files are gone
        after = audit_log(open_source(root), key.verifier)
        assert (after.checkpoint.size, after.unpublished_files) == (300, 0)
        assert writer.add([b"second %d" % i for i in range(10)]) == list(range(300, 310))
    result = audit_log(open_source(root), key.verifier)
    assert (result.checkpoint.size, result.unpublished_files) == (310, 0)
