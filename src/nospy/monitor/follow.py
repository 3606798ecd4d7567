"""Following a tiled transparency log (C2SP tlog-tiles, tlog-checkpoint) from one checkpoint to the next.

Each step verifies the new checkpoint's signature, then proves it consistent with the last checkpoint
seen (RFC 6962 section 2.1.2 consistency proof, built from the tiles and checked with RFC 9162
section 2.1.4.2). A log whose new checkpoint is not an extension of the last one seen has forked: two
signed checkpoints that cannot both be true, which is the evidence a `ForkError` carries. A checkpoint
older than the last one seen (a cache or mirror behind the log) is no fork when the tree seen extends
it: the step is then *behind*, and brings nothing new. New entries are read from the entry bundles,
and each one used is proved included under the new checkpoint (RFC 9162 section 2.1.3.2), so a log
that lies about its bundles cannot feed the monitor entries outside its tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from nospy import keys
from nospy.errors import InputError, VerificationError
from nospy.ledger import merkle
from nospy.ledger.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from nospy.ledger.interface import LogSource
from nospy.ledger.tiles import TILE_WIDTH, TileReader, behind_proof, read_bundle

__all__ = ["ForkError", "Step", "UnprovenError", "entries", "latest", "step", "verify_included"]


class ForkError(VerificationError):
    """The log's checkpoint is not consistent with the last one seen: the log forked or rewrote history."""


class UnprovenError(InputError):
    """The log's checkpoint is older than the last one seen, and the log does not serve the tiles that
    would prove the two consistent: a mirror far behind, or a log that rewrote its history."""


@dataclass(frozen=True)
class Step:
    """The newly verified checkpoint, and a tile reader for its tree."""

    signed: SignedCheckpoint
    previous_size: int | None
    reader: TileReader
    behind: bool = False  # the checkpoint is older than the one seen, and consistent with it


def latest(source: LogSource, log_key: keys.VerifierKey) -> SignedCheckpoint:
    """The log's checkpoint, its signature verified (`VerificationError` if not, `InputError` if unreadable)."""
    return open_checkpoint(source.read("checkpoint"), [log_key])


def step(source: LogSource, log_key: keys.VerifierKey, signed: SignedCheckpoint, previous: str | None) -> Step:
    """Prove ``signed`` (from `latest`) consistent with ``previous``, a checkpoint note seen before
    (None the first time).

    Raises `ForkError` when the two are not consistent, `InputError` when the tiles cannot be read (a
    network error is no fork), `UnprovenError` when the checkpoint is the smaller and the tiles of the
    tree seen cannot be read.
    """
    cp = signed.checkpoint
    reader = TileReader(source.read, cp.size)
    if previous is None:
        return Step(signed, None, reader)
    try:
        prev = open_checkpoint(previous, [log_key]).checkpoint
    except (InputError, VerificationError) as exc:  # pragma: no cover - stored only after it verified
        raise InputError(f"the stored checkpoint no longer verifies: {exc}") from None
    if prev.origin != cp.origin:
        raise InputError(f"the log's origin is {cp.origin!r}, the stored checkpoint's {prev.origin!r}")
    if cp.size < prev.size:
        return _behind(source, signed, prev, reader)
    _prove(prev, cp, reader.consistency_proof(prev.size) if 0 < prev.size < cp.size else [], prev, cp)
    return Step(signed, prev.size, reader)


def _prove(old: Checkpoint, new: Checkpoint, proof: list[bytes], seen: Checkpoint, served: Checkpoint) -> None:
    """Return if ``proof`` shows tree ``old`` a prefix of tree ``new``; `ForkError` naming the two if not."""
    try:
        merkle.verify_consistency(old.size, new.size, proof, old.root, new.root)
    except VerificationError as exc:
        raise ForkError(
            f"checkpoint of size {served.size} is not consistent with the one of size {seen.size} seen before: {exc}"
        ) from None


def _behind(source: LogSource, signed: SignedCheckpoint, prev: Checkpoint, reader: TileReader) -> Step:
    cp = signed.checkpoint
    try:
        proof = behind_proof(source.read, cp.size, prev.size)
    except InputError as exc:
        raise UnprovenError(str(exc)) from None
    _prove(cp, prev, proof, prev, cp)
    return Step(signed, prev.size, reader, behind=True)


def entries(source: LogSource, size: int, start: int) -> Iterator[tuple[int, bytes]]:
    """(index, entry) for the entries ``start`` .. ``size - 1``, read bundle by bundle (unverified)."""
    if start >= size:
        return
    for n in range(start // TILE_WIDTH, -(-size // TILE_WIDTH)):
        bundle = read_bundle(source.read, n, size)
        for offset, entry in enumerate(bundle):
            index = n * TILE_WIDTH + offset
            if index >= start:
                yield index, entry


def verify_included(st: Step, index: int, entry: bytes) -> list[bytes]:
    """The inclusion proof of ``entry`` at ``index`` under the step's checkpoint; `VerificationError` if it fails."""
    cp = st.signed.checkpoint
    proof = st.reader.inclusion_proof(index)
    merkle.verify_inclusion(index, cp.size, merkle.leaf_hash(entry), proof, cp.root)
    return proof
