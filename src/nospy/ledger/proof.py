"""C2SP tlog-proof (https://c2sp.org/tlog-proof): offline-verifiable inclusion proofs.

c2sp.org/tlog-proof@v1
extra <base64>          (optional; nospy puts the logged release manifest here)
index <N>
<base64 hash>...        (inclusion proof, leaf's sibling first)
<empty line>
<checkpoint, verbatim>
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from nospy.errors import InputError
from nospy.ledger import merkle

__all__ = ["HEADER", "TlogProof", "format_proof", "parse_proof"]

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_BYTES = 1 << 20
_INDEX_RE = re.compile(r"index (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None


def format_proof(index: int, proof: list[bytes], checkpoint: str, extra: bytes | None = None) -> str:
    lines = [HEADER]
    if extra is not None:
        lines.append(f"extra {base64.b64encode(extra).decode()}")
    lines.append(f"index {index}")
    lines += [base64.b64encode(h).decode() for h in proof]
    return "\n".join(lines) + "\n\n" + checkpoint


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"tlog-proof: {what} is not base64") from exc


def parse_proof(data: bytes | str) -> TlogProof:
    """Parse a tlog-proof; the checkpoint is returned unverified (see `nospy.ledger.verify_proof`)."""
    if len(data) > MAX_PROOF_BYTES:
        raise InputError("tlog-proof: too large")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("tlog-proof: not UTF-8") from exc
    head, sep, checkpoint = data.partition("\n\n")
    if not sep or not checkpoint:
        raise InputError("tlog-proof: no checkpoint after the proof lines")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise InputError(f"tlog-proof: first line must be {HEADER}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = _b64(lines[pos][6:], "extra data")
        pos += 1
    if pos >= len(lines):
        raise InputError("tlog-proof: no index line")
    m = _INDEX_RE.fullmatch(lines[pos])
    if m is None:
        raise InputError("tlog-proof: malformed index line")
    index = int(m.group(1))
    if index >= 1 << 63:
        raise InputError("tlog-proof: index out of range")
    hashes = []
    for i, line in enumerate(lines[pos + 1 :]):
        h = _b64(line, f"proof line {i}")
        if len(h) != merkle.HASH_SIZE:
            raise InputError(f"tlog-proof: proof line {i} is {len(h)} bytes, not 32")
        hashes.append(h)
    if len(hashes) > 64:
        raise InputError("tlog-proof: more than 64 proof hashes")
    return TlogProof(index, tuple(hashes), checkpoint, extra)
