"""Flow export messages, wherever they come from: a file of messages or UDP payloads in a capture.

An IPFIX file (RFC 5655 section 8: IPFIX messages one after another) and a dump of NetFlow v5/v9
datagrams are both a stream of messages; each message says how long it is (v5: by its record count,
IPFIX: by its length field) or, for NetFlow v9 (RFC 3954), ends where the next header's version number
9 appears in place of a flowset id (flowset ids 2-255 are reserved, so 9 is never a flowset).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit
from nospy.traffic.flows import Flows
from nospy.traffic.interface import Buffer, Capture, DamageNote, TrafficError
from nospy.traffic.netflow5 import HEADER, MAX_COUNT, RECORD, decode_v5
from nospy.traffic.templates import IPFIX, NETFLOW9, decode_messages

__all__ = ["decode_exports", "read_stream", "split_stream"]

I64 = npt.NDArray[np.int64]


@jit
def _split(buf: Buffer, version: int) -> tuple[I64, I64, int]:
    """Offsets and lengths of the messages of one version; where the walk stopped."""
    n = buf.size
    cap = 16 + n // 24
    off = np.empty(cap, dtype=np.int64)
    length = np.empty(cap, dtype=np.int64)
    k = 0
    p = 0
    while p + 4 <= n:
        if buf[p] != 0 or buf[p + 1] != version:
            break
        count = (np.int64(buf[p + 2]) << 8) | buf[p + 3]
        if version == 5:
            size = HEADER + RECORD * count
            if count < 1 or count > MAX_COUNT or p + size > n:
                break
        elif version == 10:
            size = count
            if size < 16 or p + size > n:
                break
        else:
            q = p + 20
            if q > n:
                break
            while q + 4 <= n and not (buf[q] == 0 and buf[q + 1] == 9):
                flen = (np.int64(buf[q + 2]) << 8) | buf[q + 3]
                if flen < 4 or q + flen > n:
                    break
                q += flen
            if q + 4 <= n and not (buf[q] == 0 and buf[q + 1] == 9):
                break
            if q + 4 > n:
                q = n
            size = q - p
        off[k] = p
        length[k] = size
        k += 1
        p += size
    return off[:k], length[:k], p


def split_stream(data: Buffer, version: int) -> tuple[I64, I64, int]:
    """The messages of a stream of one export version, and the offset where reading stopped."""
    return _split(data, version)


def decode_exports(buf: Buffer, off: I64, length: I64) -> tuple[Flows, list[DamageNote], npt.NDArray[np.bool_]]:
    """Flows of export messages of any version, each located by offset and length in ``buf``.

    Returns the flows, damage notes and which messages were export messages (the others are ignored).
    """
    version = (buf[off].astype(np.int64) << 8) | buf[off + 1].astype(np.int64)
    count = (buf[off + 2].astype(np.int64) << 8) | buf[off + 3].astype(np.int64)
    is_v5 = (version == 5) & (count >= 1) & (count <= MAX_COUNT) & (length == HEADER + RECORD * count)
    is_v10 = (version == IPFIX) & (count == length) & (length >= 16)
    is_v9 = (version == NETFLOW9) & (length >= 20)
    parts = [decode_v5(buf, off[is_v5])]
    errors: list[DamageNote] = []
    for mask, v in ((is_v9, NETFLOW9), (is_v10, IPFIX)):
        if mask.any():
            flows, notes, _ = decode_messages(buf, off[mask], length[mask], v)
            parts.append(flows)
            errors.extend(notes)
    return Flows.concat(parts), errors, is_v5 | is_v9 | is_v10


def read_stream(name: str, data: Buffer, version: int) -> Capture:
    """A file that is a stream of export messages of one version."""
    off, length, stop = split_stream(data, version)
    if off.size == 0:
        raise TrafficError(f"not a {name} stream: no complete message at the start")
    errors = []
    if stop < data.size:
        errors.append(DamageNote(f"offset {stop}", f"not a {name} message; read {off.size} messages before it"))
    if version == 5:
        flows = decode_v5(data, off)
    else:
        flows, notes, _ = decode_messages(data, off, length, version)
        errors.extend(notes)
    return Capture(name, flows, errors=tuple(errors), records=len(flows), detail={"messages": int(off.size)})
