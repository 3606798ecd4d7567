"""Classic pcap files (draft-ietf-opsawg-pcap): both byte orders, microsecond and nanosecond stamps.

The file header gives the byte order and time resolution through its magic number (0xA1B2C3D4
microseconds, 0xA1B23C4D nanoseconds) and the link type in the low 16 bits of its last field (the
upper bits carry FCS information). Record headers are 16 bytes: seconds, sub-seconds, captured and
original length. A file cut off in the middle of a record keeps every complete record before it.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit
from nospy.traffic.interface import Buffer, Capture, DamageNote, Reader, TrafficError
from nospy.traffic.packetcapture import capture_from_packets

__all__ = ["PcapReader"]

I64 = npt.NDArray[np.int64]

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}

MAX_SNAPLEN = 1 << 18  # larger records are corrupt rather than jumbo frames


@jit
def _walk(buf: Buffer, big: bool, scale: int) -> tuple[I64, I64, I64, int]:
    """Offsets, captured lengths and timestamps (ns) of every complete record; where the walk stopped."""
    n = buf.size
    cap = max(16, (n - 24) // 32 + 1)
    off = np.empty(cap, dtype=np.int64)
    caplen = np.empty(cap, dtype=np.int64)
    ts = np.empty(cap, dtype=np.int64)
    p = 24
    k = 0
    while p + 16 <= n:
        if big:
            sec = (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | buf[p + 3]
            sub = (np.int64(buf[p + 4]) << 24) | (np.int64(buf[p + 5]) << 16) | (np.int64(buf[p + 6]) << 8)
            sub |= buf[p + 7]
            incl = (np.int64(buf[p + 8]) << 24) | (np.int64(buf[p + 9]) << 16) | (np.int64(buf[p + 10]) << 8)
            incl |= buf[p + 11]
        else:
            sec = (np.int64(buf[p + 3]) << 24) | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 1]) << 8) | buf[p]
            sub = (np.int64(buf[p + 7]) << 24) | (np.int64(buf[p + 6]) << 16) | (np.int64(buf[p + 5]) << 8)
            sub |= buf[p + 4]
            incl = (np.int64(buf[p + 11]) << 24) | (np.int64(buf[p + 10]) << 16) | (np.int64(buf[p + 9]) << 8)
            incl |= buf[p + 8]
        if incl > MAX_SNAPLEN or p + 16 + incl > n:
            break
        if k == cap:
            cap *= 2
            off = np.resize(off, cap)
            caplen = np.resize(caplen, cap)
            ts = np.resize(ts, cap)
        off[k] = p + 16
        caplen[k] = incl
        ts[k] = sec * 1_000_000_000 + sub * scale
        k += 1
        p += 16 + incl
    return off[:k], caplen[:k], ts[:k], p


class PcapReader(Reader):
    NAME = "pcap"
    DOC = "libpcap capture file (draft-ietf-opsawg-pcap); any byte order, micro- or nanosecond timestamps"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:4] in _MAGIC

    def read(self, data: Buffer) -> Capture:
        head = data[:24].tobytes()
        if len(head) < 24 or head[:4] not in _MAGIC:
            raise TrafficError("not a pcap file (no pcap magic number)")
        order, scale = _MAGIC[head[:4]]
        linktype = struct.unpack(order + "I", head[20:24])[0] & 0xFFFF
        off, caplen, ts, stop = _walk(data, order == ">", scale)
        errors = []
        if stop < data.size:
            errors.append(
                DamageNote(f"offset {stop}", f"truncated or corrupt record; read {off.size} packets before it")
            )
        link = np.full(off.size, linktype, dtype=np.int32)
        return capture_from_packets(self.NAME, data, off, caplen, ts, link, tuple(errors), {"linktypes": [linktype]})
