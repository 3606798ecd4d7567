"""NetFlow version 5 export datagrams (Cisco's published format; no RFC, RFC 3954 section 1 refers to it).

A datagram is a 24-byte header (version 5, record count, sysUptime, export seconds and nanoseconds,
sequence, engine, sampling) and ``count`` fixed 48-byte records carrying IPv4 addresses, ports,
protocol, packet and octet counters and the sysUptime of the first and last packet. Records are decoded
by a compiled loop straight into flow columns; first/last seen become absolute times through the header's
export time and uptime.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit
from nospy.traffic.flows import Flows

__all__ = ["HEADER", "RECORD", "decode_v5", "valid_v5"]

I64 = npt.NDArray[np.int64]

HEADER = 24
RECORD = 48
MAX_COUNT = 30  # the format's own limit; larger counts mean the datagram is not NetFlow v5


def valid_v5(msg: bytes) -> bool:
    """True if ``msg`` is exactly one NetFlow v5 datagram."""
    if len(msg) < HEADER or msg[:2] != b"\x00\x05":
        return False
    count = int.from_bytes(msg[2:4], "big")
    return 1 <= count <= MAX_COUNT and len(msg) == HEADER + RECORD * count


@jit
def _be32(buf: npt.NDArray[np.uint8], p: int) -> int:
    return (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | buf[p + 3]  # type: ignore[no-any-return]


@jit
def _decode(
    buf: npt.NDArray[np.uint8], msg_off: I64
) -> tuple[
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint16],
    npt.NDArray[np.uint16],
    npt.NDArray[np.uint8],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    I64,
    I64,
]:
    total = 0
    for m in range(msg_off.size):
        p = msg_off[m]
        total += (np.int64(buf[p + 2]) << 8) | buf[p + 3]
    src = np.empty(total, dtype=np.uint64)
    dst = np.empty(total, dtype=np.uint64)
    sport = np.empty(total, dtype=np.uint16)
    dport = np.empty(total, dtype=np.uint16)
    proto = np.empty(total, dtype=np.uint8)
    nbytes = np.empty(total, dtype=np.uint64)
    npackets = np.empty(total, dtype=np.uint64)
    first = np.empty(total, dtype=np.int64)
    last = np.empty(total, dtype=np.int64)
    mapped = np.uint64(0xFFFF00000000)
    k = 0
    for m in range(msg_off.size):
        p = msg_off[m]
        count = (np.int64(buf[p + 2]) << 8) | buf[p + 3]
        uptime = _be32(buf, p + 4)
        # the export time in ns, minus the uptime in ms: the boot time, to which record uptimes are added
        boot = _be32(buf, p + 8) * 1_000_000_000 + _be32(buf, p + 12) - uptime * 1_000_000
        r = p + HEADER
        for _ in range(count):
            src[k] = mapped | np.uint64(_be32(buf, r))
            dst[k] = mapped | np.uint64(_be32(buf, r + 4))
            npackets[k] = np.uint64(_be32(buf, r + 16))
            nbytes[k] = np.uint64(_be32(buf, r + 20))
            first[k] = boot + _be32(buf, r + 24) * 1_000_000
            last[k] = boot + _be32(buf, r + 28) * 1_000_000
            sport[k] = np.uint16((np.int64(buf[r + 32]) << 8) | buf[r + 33])
            dport[k] = np.uint16((np.int64(buf[r + 34]) << 8) | buf[r + 35])
            proto[k] = buf[r + 38]
            k += 1
            r += RECORD
    return src, dst, sport, dport, proto, nbytes, npackets, first, last


def decode_v5(buf: npt.NDArray[np.uint8], msg_off: I64) -> Flows:
    """The records of the NetFlow v5 datagrams starting at ``msg_off`` (each checked by `valid_v5`)."""
    src, dst, sport, dport, proto, nbytes, npackets, first, last = _decode(buf, np.ascontiguousarray(msg_off))
    return Flows(
        src_hi=np.zeros(src.size, dtype=np.uint64),  # calloc'ed: IPv4 never touches these pages
        src_lo=src,
        dst_hi=np.zeros(src.size, dtype=np.uint64),
        dst_lo=dst,
        sport=sport,
        dport=dport,
        proto=proto,
        bytes=nbytes,
        packets=npackets,
        first=first,
        last=last,
    )
