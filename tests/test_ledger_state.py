"""The writer's private state (``.nospy/``) in a local audit: a log without it audits on its own,
and a configuration or pending-batch journal that would make the next append go wrong fails the
audit and is refused by the writer, before recovery deletes anything."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from nospy import keys
from nospy.errors import NospyError, VerificationError
from nospy.ledger import audit_log, open_source
from nospy.ledger.storage import LogWriter, init_log

ORIGIN = "log.example/nospy-state"


def _log(root: Path, key: keys.SigningKey, key_path: Path, entries: int) -> None:
    vendor = keys.generate("vendor.example")
    init_log(root, ORIGIN, key, key_path, [vendor.verifier])
    with LogWriter(root) as writer:
        writer.add([f"entry {i}".encode() for i in range(entries)])


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keys.SigningKey]:
    """A log of 5 entries whose writer died after a batch of 3 more was renamed into place and
    before its checkpoint was written: the batch's files and journal are there, the checkpoint is
    still at 5. Built from a twin log that did append the batch."""
    base = tmp_path_factory.mktemp("state")
    key = keys.generate(ORIGIN)
    key_path = base / "log.skey"
    key_path.write_text(str(key))
    root, twin = base / "log", base / "twin"
    _log(root, key, key_path, 5)
    shutil.copytree(root, twin)
    with LogWriter(twin) as writer:
        writer.add([f"entry {i}".encode() for i in range(5, 8)])
    batch = ["tile/0/000.p/8", "tile/entries/000.p/8"]
    for rel in batch:
        shutil.copy(twin / rel, root / rel)
    journal = {"old_size": 5, "new_size": 8, "paths": batch}
    (root / ".nospy" / "journal.json").write_text(json.dumps(journal))
    return root, key


def _audit(root: Path, key: keys.SigningKey) -> bool:
    return audit_log(open_source(root), key.verifier).writer_state_checked


def _next_append_is_sound(root: Path, key: keys.SigningKey) -> None:
    """Open a writer, append, and audit: the writer refuses with a clear error, or all goes right."""
    try:
        with LogWriter(root) as writer:
            writer.add([b"the next entry"])
    except NospyError:
        return
    assert _audit(root, key)


def test_public_log_audits_without_the_writer_state(crashed: tuple[Path, keys.SigningKey], tmp_path: Path) -> None:
    root, key = crashed
    result = audit_log(open_source(root), key.verifier)
    assert result.writer_state_checked
    assert result.checkpoint.size == 5
    assert result.unpublished_files == 2  # the batch's files, past the checkpoint
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".nospy"))
    assert not _audit(copy, key)


def test_crashed_batch_recovers_and_appends(crashed: tuple[Path, keys.SigningKey], tmp_path: Path) -> None:
    root, key = crashed
    work = tmp_path / "log"
    shutil.copytree(root, work)
    with LogWriter(work) as writer:
        assert writer.size == 5
        assert writer.add([b"entry 5"]) == [5]
    assert not (work / ".nospy" / "journal.json").exists()
    assert audit_log(open_source(work), key.verifier).checkpoint.size == 6


def _edit_journal(root: Path, edit: Callable[[dict[str, object]], None]) -> None:
    path = root / ".nospy" / "journal.json"
    plan = json.loads(path.read_text())
    edit(plan)
    path.write_text(json.dumps(plan))


@pytest.mark.parametrize(
    ("case", "edit"),
    [
        ("names a published tile", lambda p: p.update(paths=["tile/0/000.p/5", "tile/entries/000.p/8"])),
        ("names a file outside the log", lambda p: p.update(paths=["../outside"])),
        ("names a file past the batch", lambda p: p.update(paths=["tile/0/000.p/9"])),
        ("disagrees with the checkpoint", lambda p: p.update(old_size=4)),
        ("does not grow the log", lambda p: p.update(new_size=5)),
        ("misses a field", lambda p: p.pop("paths")),
    ],
)
def test_journal_that_would_break_the_log_is_refused(
    crashed: tuple[Path, keys.SigningKey], tmp_path: Path, case: str, edit: Callable[[dict[str, object]], None]
) -> None:
    root, key = crashed
    work = tmp_path / "log"
    shutil.copytree(root, work)
    outside = tmp_path / "outside"
    outside.write_bytes(b"not the log's")
    _edit_journal(work, edit)
    with pytest.raises(VerificationError, match="journal"):
        audit_log(open_source(work), key.verifier)
    with pytest.raises(VerificationError, match="journal"):
        LogWriter(work)
    # nothing was deleted: the published tree and the file outside are still there
    assert (work / "tile/0/000.p/5").exists(), case
    assert outside.exists()
    (work / ".nospy" / "journal.json").unlink()
    assert _audit(work, key)


@pytest.mark.parametrize("name", ["journal.json", "config.json"])
def test_every_flipped_byte_of_the_state_is_caught_or_harmless(
    crashed: tuple[Path, keys.SigningKey], tmp_path: Path, name: str
) -> None:
    root, key = crashed
    data = (root / ".nospy" / name).read_bytes()
    caught = 0
    for i in range(len(data)):
        work = tmp_path / f"log-{i}"
        shutil.copytree(root, work)
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        (work / ".nospy" / name).write_bytes(bytes(flipped))
        try:
            _audit(work, key)
        except VerificationError:
            caught += 1
        else:
            _next_append_is_sound(work, key)  # the audit passed: the next append must go right
        shutil.rmtree(work)
    # most flips change a size, a path, a key or the JSON itself; the rest (a trusted vendor key's
    # bits, a digit of an unused size) leave a state the writer handles
    assert caught > len(data) // 2
