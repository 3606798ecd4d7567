"""Readers for files of flow-export messages: NetFlow v5, NetFlow v9 (RFC 3954), IPFIX (RFC 7011/5655).

The decoding lives in `netflow5` and `templates`; these readers only recognise the stream by its first
header and hand it to `export.read_stream`.
"""

from __future__ import annotations

from nospy.traffic.export import read_stream
from nospy.traffic.interface import Buffer, Capture, Reader
from nospy.traffic.netflow5 import valid_v5

__all__ = ["IpfixReader", "Netflow5Reader", "Netflow9Reader"]


class Netflow5Reader(Reader):
    NAME = "netflow-v5"
    DOC = "NetFlow v5 export datagrams, one after another (as dumped from the collector's UDP socket)"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if head[:2] != b"\x00\x05" or len(head) < 4:
            return False
        size = 24 + 48 * int.from_bytes(head[2:4], "big")
        return valid_v5(head[:size]) if len(head) >= size else 24 + 48 <= size <= 24 + 48 * 30

    def read(self, data: Buffer) -> Capture:
        return read_stream(self.NAME, data, 5)


class Netflow9Reader(Reader):
    NAME = "netflow-v9"
    DOC = "NetFlow v9 export packets (RFC 3954), one after another"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        # version 9, a record count below the datagram limit, then a template or data flowset id
        if len(head) < 24 or head[:2] != b"\x00\x09":
            return False
        flowset = int.from_bytes(head[20:22], "big")
        length = int.from_bytes(head[22:24], "big")
        return (flowset in (0, 1) or flowset >= 256) and length >= 4

    def read(self, data: Buffer) -> Capture:
        return read_stream(self.NAME, data, 9)


class IpfixReader(Reader):
    NAME = "ipfix"
    DOC = "IPFIX messages (RFC 7011), one after another: the IPFIX file format (RFC 5655)"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if len(head) < 20 or head[:2] != b"\x00\x0a":
            return False
        set_id = int.from_bytes(head[16:18], "big")
        return int.from_bytes(head[2:4], "big") >= 16 and (set_id in (2, 3) or set_id >= 256)

    def read(self, data: Buffer) -> Capture:
        return read_stream(self.NAME, data, 10)
