"""The transparency-log pages' reads: the verified checkpoint, its entries, one entry's inclusion proof.

A checkpoint's other signature lines are checked as C2SP tlog-cosignature (Ed25519, v1) by the
witness keys the server was given: each is shown as verified (with its timestamp), bad signature
(a known witness key whose cosignature does not verify) or unknown key.

Every read starts from the log's checkpoint verified under the configured log key (C2SP
signed-note, tlog-checkpoint); entries are read from the entry bundles (C2SP tlog-tiles) only up to
that checkpoint's size, and an entry's inclusion proof (RFC 6962 / RFC 9162) is verified against
the checkpoint's root before it is shown. A checkpoint that does not verify raises, never shown.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from nospy import dsse, keys
from nospy.errors import InputError, VerificationError
from nospy.ledger import merkle
from nospy.ledger.checkpoint import CosignerKey, SignedCheckpoint, open_checkpoint
from nospy.ledger.interface import LogSource
from nospy.ledger.release import read_release
from nospy.ledger.tiles import TILE_WIDTH, TileCache, TileReader, read_bundle

__all__ = ["CosignatureRow", "CosignatureStatus", "EntryRow", "EntryView", "cosignatures", "entries", "entry", "latest"]


@dataclass(frozen=True)
class EntryRow:
    index: int
    product: str
    version: str
    sha256: tuple[str, ...]
    signer: str
    problem: str | None  # why the entry is not a readable release manifest


@dataclass(frozen=True)
class EntryView:
    row: EntryRow
    leaf_hash: str
    proof: tuple[str, ...]
    body: str


def latest(source: LogSource, log_key: keys.VerifierKey) -> SignedCheckpoint:
    """The log's checkpoint, verified; `VerificationError` or `InputError` if it does not verify."""
    return open_checkpoint(source.read("checkpoint"), [log_key])


def _row(index: int, data: bytes) -> EntryRow:
    try:
        env, statement = read_release(data, None)
    except (InputError, VerificationError) as exc:
        return EntryRow(index, "", "", (), "", str(exc))
    signer = env.signatures[0].keyid if env.signatures else ""
    digests = tuple(s.sha256 for s in statement.subject)
    return EntryRow(index, statement.predicate.product, statement.predicate.version, digests, signer, None)


def _bundle(source: LogSource, size: int, n: int) -> list[bytes]:
    return read_bundle(source.read, n, size)


def entries(source: LogSource, signed: SignedCheckpoint, offset: int, limit: int) -> list[EntryRow]:
    """Entries ``offset`` .. ``offset + limit`` (clipped to the checkpoint's size), oldest first."""
    size = signed.checkpoint.size
    end = min(size, offset + limit)
    rows: list[EntryRow] = []
    bundles: dict[int, list[bytes]] = {}
    for i in range(offset, end):
        n = i // TILE_WIDTH
        if n not in bundles:
            bundles[n] = _bundle(source, size, n)
        rows.append(_row(i, bundles[n][i % TILE_WIDTH]))
    return rows


def entry(source: LogSource, signed: SignedCheckpoint, index: int, tiles: TileCache | None = None) -> EntryView:
    """One entry with its inclusion proof, verified against the checkpoint (`VerificationError` if not).

    ``tiles`` is the server's cache of hashed tiles, shared by requests; it is emptied when a proof
    fails, so a tile a lying source served once is not used again.
    """
    cp = signed.checkpoint
    if not 0 <= index < cp.size:
        raise InputError(f"no entry {index}: the checkpoint's tree has {cp.size}")
    data = _bundle(source, cp.size, index // TILE_WIDTH)[index % TILE_WIDTH]
    leaf = merkle.leaf_hash(data)
    try:
        proof = TileReader(source.read, cp.size, tiles).inclusion_proof(index)
        merkle.verify_inclusion(index, cp.size, leaf, proof, cp.root)
    except (InputError, VerificationError):
        if tiles is not None:
            tiles.clear()
        raise
    try:
        body = dsse.parse(data).payload_bytes.decode("utf-8", "replace")
    except InputError:
        body = data.decode("utf-8", "replace")
    return EntryView(
        _row(index, data), base64.b64encode(leaf).decode(), tuple(base64.b64encode(p).decode() for p in proof), body
    )


class CosignatureStatus(StrEnum):
    VERIFIED = "verified"
    UNKNOWN_KEY = "unknown key"
    BAD_SIGNATURE = "bad signature"


@dataclass(frozen=True)
class CosignatureRow:
    name: str
    key_id: str  # hex, as the signature line carries it
    status: CosignatureStatus
    reason: str | None  # why a known witness's cosignature does not verify
    time: datetime | None  # the cosignature's timestamp, once it verified


def cosignatures(
    signed: SignedCheckpoint, log_key: keys.VerifierKey, witnesses: Sequence[CosignerKey]
) -> list[CosignatureRow]:
    """Every signature line of the checkpoint other than the log's, checked against ``witnesses``."""
    # the note verified when it was opened: opening it again only lists the lines of other keys
    note = keys.open_note(signed.note, [log_key])
    known = {(w.name, w.key_id): w for w in witnesses}
    rows: list[CosignatureRow] = []
    for name, raw in note.unverified:
        witness = known.get((name, raw[:4]))
        if witness is None:
            rows.append(CosignatureRow(name, raw[:4].hex(), CosignatureStatus.UNKNOWN_KEY, None, None))
            continue
        try:
            stamp = witness.verify(note.text, raw)
        except VerificationError as exc:
            rows.append(CosignatureRow(name, raw[:4].hex(), CosignatureStatus.BAD_SIGNATURE, str(exc), None))
            continue
        at = datetime.fromtimestamp(stamp, UTC) if stamp < 253402300800 else None  # past year 9999: no date
        rows.append(CosignatureRow(name, raw[:4].hex(), CosignatureStatus.VERIFIED, None, at))
    return rows
