"""Classic pcap files (draft-ietf-opsawg-pcap): both byte orders, microsecond and nanosecond stamps.

The file header gives the byte order and time resolution through its magic number (0xA1B2C3D4
microseconds, 0xA1B23C4D nanoseconds) and the link type in the low 16 bits of its last field (the
upper bits carry FCS information). Record headers are 16 bytes: seconds, sub-seconds, captured and
original length. A file cut off in the middle of a record keeps every complete record before it.
"""

from __future__ import annotations

import struct

from nospy.traffic.interface import Buffer, Capture, DamageNote, Reader, TrafficError
from nospy.traffic.packetcapture import capture_from_packets
from nospy.traffic.packets import flows_pcap

__all__ = ["PcapReader"]

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}


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
        pf = flows_pcap(data, order == ">", scale, linktype)
        errors = []
        if pf.stop < data.size:
            note = f"truncated or corrupt record; read {pf.packets} packets before it"
            errors.append(DamageNote(f"offset {pf.stop}", note))
        return capture_from_packets(self.NAME, data, pf, tuple(errors), {"linktypes": [linktype]})
