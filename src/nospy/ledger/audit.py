"""Auditing a tiled log (C2SP tlog-tiles, tlog-checkpoint): verify the checkpoint signature,
re-hash every entry from the entry bundles, rebuild every tile level from the one below, compare
with the published tiles and the checkpoint's root, and check consistency with the last checkpoint
this client saw.

On a directory, every tile and bundle file inside the checkpoint's tree is checked, including
partial tiles kept for older checkpoints; files that reach past the checkpoint (a batch still being
written) are counted and left alone, as clients never fetch them. Dot-files are not part of the
layout and are ignored by the public checks: a log copied or written by any tlog-tiles tool audits
on its own. When the directory holds nospy's writer state (``.nospy/``), that is checked last
against the verified checkpoint (`nospy.ledger.storage.check_writer_state`): a configuration or a
pending batch that would make the next append go wrong fails the audit too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nospy import keys
from nospy._fileio import read_limited, write_atomic
from nospy.errors import InputError, VerificationError
from nospy.ledger import merkle
from nospy.ledger.checkpoint import Checkpoint, open_checkpoint
from nospy.ledger.interface import DirSource, LogSource
from nospy.ledger.storage import check_writer_state
from nospy.ledger.tiles import (
    TILE_WIDTH,
    TileReader,
    behind_proof,
    bundle_path,
    parse_bundle,
    parse_tile_path,
    tile_path,
    tile_width,
)

__all__ = ["AuditResult", "audit_log"]


@dataclass(frozen=True)
class AuditResult:
    checkpoint: Checkpoint
    files_checked: int
    unpublished_files: int
    previous_size: int | None  # size of the last checkpoint seen before, if any
    writer_state_checked: bool = False  # the directory's .nospy/ was checked (nospy's own writer)
    behind: bool = False  # the checkpoint is older than the one seen before, and proved a prefix of it


class _Tree:
    """Every level's hashes, rebuilt from the entries (level 0 kept as one bytes object per tile)."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = []

    def hashes(self, level: int, start: int, count: int) -> bytes:
        return b"".join(self.levels[level][start : start + count])


def _must(source: LogSource, path: str) -> bytes:
    try:
        return source.read(path)
    except InputError as exc:
        raise VerificationError(f"log is missing {path}: {exc}") from None


def audit_log(
    source: LogSource,
    log_key: keys.VerifierKey,
    *,
    origin: str | None = None,
    state: Path | None = None,
) -> AuditResult:
    """Audit the log behind ``source``; raise `VerificationError` on any mismatch.

    With ``state``, the checkpoint saved there by the previous audit must be consistent with the
    current one, and the current one is saved for next time. A current checkpoint older than the
    saved one (a cache or mirror behind the log) passes only if the log's tiles prove the tree seen
    an extension of it (``behind``), and never in a directory holding the writer's state; the saved
    checkpoint is then kept.
    """
    note = _must(source, "checkpoint")
    try:
        signed = open_checkpoint(note, [log_key], origin=origin)
    except InputError as exc:
        raise VerificationError(f"checkpoint: {exc}") from None
    cp = signed.checkpoint
    size = cp.size
    checked: set[str] = set()

    # level 0 from the entry bundles, checked against the level-0 tiles
    level0: list[bytes] = []
    sha = hashlib.sha256  # merkle.leaf_hash inlined: one call less per entry of a million-entry log
    for n in range(-(-size // TILE_WIDTH)):
        width = tile_width(0, n, size)
        try:
            entries = parse_bundle(_must(source, bundle_path(n, width)), width)
        except InputError as exc:
            raise VerificationError(f"{bundle_path(n, width)}: {exc}") from None
        leaves = b"".join([sha(b"\x00" + e).digest() for e in entries])
        if _must(source, tile_path(0, n, width)) != leaves:
            raise VerificationError(f"{tile_path(0, n, width)} does not match the hashes of its entries")
        level0.append(leaves)
        checked.update((bundle_path(n, width), tile_path(0, n, width)))

    # each higher level from the full tiles of the level below
    rows: list[bytes] = [b"".join(level0)]
    del level0
    level = 0
    while size >> (8 * (level + 1)):
        below = rows[level]
        full = len(below) // (TILE_WIDTH * merkle.HASH_SIZE)
        step = TILE_WIDTH * merkle.HASH_SIZE
        above = b"".join(
            merkle.root_of_units([below[i : i + 32] for i in range(t * step, (t + 1) * step, 32)]) for t in range(full)
        )
        level += 1
        for n in range(-(-(len(above) // 32) // TILE_WIDTH)):
            width = tile_width(level, n, size)
            want = above[n * TILE_WIDTH * 32 : (n * TILE_WIDTH + width) * 32]
            if _must(source, tile_path(level, n, width)) != want:
                raise VerificationError(f"{tile_path(level, n, width)} does not match the level below")
            checked.add(tile_path(level, n, width))
        rows.append(above)

    reader = TileReader(lambda p: _slice(rows, p), size)
    if reader.root() != cp.root:
        raise VerificationError(f"the entries do not hash to the checkpoint's root (size {size})")

    unpublished = 0
    writer_state = False
    if isinstance(source, DirSource):
        unpublished = _check_every_file(source, rows, size, checked)
        writer_state = check_writer_state(source.root, cp, log_key)

    previous, behind = _check_previous(source, state, cp, log_key, reader) if state is not None else (None, False)
    if behind and writer_state:
        # not a cache or mirror: the writer's own directory, whose next append would fork the log
        raise VerificationError(
            f"the log's checkpoint has size {cp.size}, after size {previous} was seen, in the writer's own "
            "directory: its next append would sign a tree that does not extend the one published; put the "
            "newer checkpoint back"
        )
    if state is not None and not behind:
        write_atomic(state, note if isinstance(note, bytes) else note.encode())
    return AuditResult(cp, len(checked), unpublished, previous, writer_state, behind)


def _slice(rows: list[bytes], path: str) -> bytes:
    tp = parse_tile_path(path)
    assert tp.level is not None  # noqa: S101 - the reader only asks for hash tiles
    start = tp.index * TILE_WIDTH * 32
    return rows[tp.level][start : start + tp.width * 32]


def _check_every_file(source: DirSource, rows: Sequence[bytes], size: int, checked: set[str]) -> int:
    """Every file under tile/ must be a well-named tile or bundle matching the rebuilt tree; returns
    how many reach past the checkpoint (and were left alone)."""
    unpublished = 0
    base = source.root / "tile"
    if not base.is_dir():
        return 0
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            rel = str((Path(dirpath) / name).relative_to(source.root))
            if rel in checked:
                continue
            try:
                tp = parse_tile_path(rel)
            except InputError as exc:
                raise VerificationError(f"unexpected file in the log: {exc}") from None
            level = 0 if tp.level is None else tp.level
            if (tp.index * TILE_WIDTH + tp.width) << (8 * level) > size:
                unpublished += 1
                continue
            data = source.read(rel)
            if tp.level is None:
                try:
                    entries = parse_bundle(data, tp.width)
                except InputError as exc:
                    raise VerificationError(f"{rel}: {exc}") from None
                got = b"".join(merkle.leaf_hash(e) for e in entries)
            else:
                got = data
            start = tp.index * TILE_WIDTH * 32
            if got != rows[level][start : start + tp.width * 32]:
                raise VerificationError(f"{rel} does not match the log's tree")
            checked.add(rel)
    return unpublished


def _check_previous(
    source: LogSource, state: Path, cp: Checkpoint, log_key: keys.VerifierKey, reader: TileReader
) -> tuple[int | None, bool]:
    """The size of the checkpoint seen before (``None``: none), and whether the current one is behind it."""
    if not state.exists():
        return None, False
    try:
        prev = open_checkpoint(read_limited(state, 1 << 16), [log_key], origin=cp.origin).checkpoint
    except InputError as exc:
        raise InputError(f"{state}: {exc}") from None
    if prev.size > cp.size:
        # the tree seen must extend the one served now, proved from the tiles of the tree seen
        try:
            proof = behind_proof(source.read, cp.size, prev.size)
        except InputError as exc:
            raise VerificationError(str(exc)) from None
        merkle.verify_consistency(cp.size, prev.size, proof, cp.root, prev.root)
        return prev.size, True
    proof = reader.consistency_proof(prev.size) if prev.size else []
    merkle.verify_consistency(prev.size, cp.size, proof, prev.root, cp.root)
    return prev.size, False
