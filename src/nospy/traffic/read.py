"""Open a capture or flow log and read it with the reader its content calls for (never its name);
gzip-compressed inputs are decompressed first."""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import numpy as np

from nospy.traffic.interface import Buffer, Capture, DamageNote, Reader, TrafficError
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


GZIP_LIMIT = 16 << 30  # decompressed bytes; more is a decompression bomb, not a capture


def _gunzip(buf: Buffer) -> tuple[Buffer, DamageNote | None]:
    """A gzip-compressed capture or log (RFC 1952; Zeek rotates its logs this way), decompressed.

    A stream cut off or damaged keeps what was decompressed before the damage, as for any capture.
    """
    out = bytearray()
    z = zlib.decompressobj(wbits=31)
    note = None
    step = 1 << 20
    try:
        for pos in range(0, buf.size, step):
            out += z.decompress(buf[pos : pos + step].tobytes(), GZIP_LIMIT + 1 - len(out))
            if len(out) > GZIP_LIMIT:
                raise TrafficError(f"gzip stream decompresses to more than {GZIP_LIMIT} bytes")
            if z.eof:
                break
        if not z.eof:
            note = DamageNote("gzip", f"compressed stream cut off after {len(out)} bytes")
    except zlib.error as exc:
        note = DamageNote("gzip", f"damaged compressed stream after {len(out)} bytes ({exc})")
    return np.frombuffer(bytes(out), dtype=np.uint8), note


def _read(buf: Buffer) -> Capture:
    note = None
    if buf[:2].tobytes() == b"\x1f\x8b":
        buf, note = _gunzip(buf)
        if buf.size == 0:
            raise TrafficError(f"gzip stream holds nothing readable ({note.message if note else 'empty'})")
    capture = reader_for(buf[:4096].tobytes())().read(buf)
    return dataclasses.replace(capture, errors=(*capture.errors, note)) if note else capture


def read_bytes(data: bytes | Buffer) -> Capture:
    """Read a capture held in memory."""
    return _read(np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data)


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
        return _read(buf)
    except TrafficError as exc:
        raise TrafficError(f"{path}: {exc}") from None
