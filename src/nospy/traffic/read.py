"""Open a capture or flow log and read it with the reader its content calls for (never its name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nospy.traffic.interface import Buffer, Capture, Reader, TrafficError
from nospy.traffic.netflow import IpfixReader, Netflow5Reader, Netflow9Reader
from nospy.traffic.nfdump import NfdumpCsvReader
from nospy.traffic.pcap import PcapReader
from nospy.traffic.pcapng import PcapngReader
from nospy.traffic.suricata import SuricataEveReader
from nospy.traffic.zeek import ZeekConnReader, ZeekJsonReader

__all__ = ["READERS", "read_bytes", "read_capture", "reader_for"]

# the one list of readers; sniffing order matters only where magic numbers could overlap (none do)
READERS: tuple[type[Reader], ...] = (
    PcapReader,
    PcapngReader,
    Netflow5Reader,
    Netflow9Reader,
    IpfixReader,
    ZeekConnReader,
    ZeekJsonReader,
    SuricataEveReader,
    NfdumpCsvReader,
)


def reader_for(head: bytes) -> type[Reader]:
    for reader in READERS:
        if reader.sniff(head):
            return reader
    raise TrafficError(
        "not a format nospy reads (pcap, pcapng, NetFlow v5/v9, IPFIX, Zeek conn.log, Suricata EVE, nfdump CSV)"
    )


def read_bytes(data: bytes | Buffer) -> Capture:
    """Read a capture held in memory."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    return reader_for(buf[:4096].tobytes())().read(buf)


def read_capture(path: Path) -> Capture:
    """Read the capture at ``path``; `TrafficError` if it cannot be opened or is no known format."""
    try:
        if path.stat().st_size == 0:
            raise TrafficError(f"{path}: empty file")
        # mapped, not copied: a capture of gigabytes is read once, straight from the page cache
        buf = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise TrafficError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return reader_for(buf[:4096].tobytes())().read(buf)
    except TrafficError as exc:
        raise TrafficError(f"{path}: {exc}") from None
