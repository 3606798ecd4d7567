"""pcapng capture files (draft-ietf-opsawg-pcapng): sections, several interfaces, any byte order.

Blocks read: Section Header (byte order per section; interface numbers restart in each section),
Interface Description (link type and the ``if_tsresol``/``if_tsoffset`` options), Enhanced Packet,
Simple Packet (interface 0, no timestamp), the obsolete Packet block and Name Resolution (the names
the capturing host resolved name addresses, as DNS answers do). Other blocks are skipped by
their length. A block cut off or with inconsistent lengths ends the walk; the packets before it are kept.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit
from nospy.traffic.dns import merge_names
from nospy.traffic.flows import address_key
from nospy.traffic.interface import Buffer, Capture, DamageNote, Reader, TrafficError
from nospy.traffic.packetcapture import capture_from_packets
from nospy.traffic.packets import flows_indexed

__all__ = ["PcapngReader"]

I64 = npt.NDArray[np.int64]

MAX_INTERFACES = 4096


@jit
def _u32(buf: Buffer, p: int, big: bool) -> int:
    if big:
        return (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | buf[p + 3]  # type: ignore[no-any-return]
    return (np.int64(buf[p + 3]) << 24) | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 1]) << 8) | buf[p]  # type: ignore[no-any-return]


@jit
def _u16(buf: Buffer, p: int, big: bool) -> int:
    if big:
        return (np.int64(buf[p]) << 8) | buf[p + 1]  # type: ignore[no-any-return]
    return (np.int64(buf[p + 1]) << 8) | buf[p]  # type: ignore[no-any-return]


@jit
def _walk(
    buf: Buffer,
) -> tuple[I64, I64, I64, npt.NDArray[np.int32], npt.NDArray[np.int32], int, int, I64, npt.NDArray[np.bool_]]:
    """Packets (offset, captured length, ns timestamp, interface), each interface's link type, where
    the walk stopped and why (0 end of file, 1 damaged block, 2 unknown interface, 3 too many interfaces),
    and the offsets and byte orders of the Name Resolution Blocks.
    """
    n = buf.size
    cap = max(16, n // 64)
    off = np.empty(cap, dtype=np.int64)
    caplen = np.empty(cap, dtype=np.int64)
    ts = np.empty(cap, dtype=np.int64)
    iface = np.empty(cap, dtype=np.int32)
    links = np.zeros(MAX_INTERFACES, dtype=np.int32)
    snaplens = np.zeros(MAX_INTERFACES, dtype=np.int64)
    units = np.zeros(MAX_INTERFACES, dtype=np.float64)  # timestamp units per second
    tsoff = np.zeros(MAX_INTERFACES, dtype=np.int64)
    nrb = np.empty(4, dtype=np.int64)
    nrb_big = np.empty(4, dtype=np.bool_)
    nn = 0
    nif = 0
    base = 0  # interface numbers restart in each section
    big = False
    k = 0
    p = 0
    why = 0
    while p + 12 <= n:
        btype_le = _u32(buf, p, False)
        if btype_le == 0x0A0D0D0A:
            magic = _u32(buf, p + 8, False)
            if magic == 0x1A2B3C4D:
                big = False
            elif magic == 0x4D3C2B1A:
                big = True
            else:
                why = 1
                break
            base = nif
        btype = _u32(buf, p, big)
        blen = _u32(buf, p + 4, big)
        if blen < 12 or blen % 4 != 0 or p + blen > n or _u32(buf, p + blen - 4, big) != blen:
            why = 1
            break
        body = p + 8
        bend = p + blen - 4
        if btype == 4:  # Name Resolution Block: read in Python
            if nn == nrb.size:
                nrb = np.resize(nrb, nn * 2)
                nrb_big = np.resize(nrb_big, nn * 2)
            nrb[nn] = p
            nrb_big[nn] = big
            nn += 1
        if btype == 1:  # Interface Description Block
            if nif >= MAX_INTERFACES:
                why = 3
                break
            if bend - body < 8:
                why = 1
                break
            links[nif] = _u16(buf, body, big)
            snaplens[nif] = _u32(buf, body + 4, big)
            units[nif] = 1e6
            q = body + 8
            while q + 4 <= bend:
                code = _u16(buf, q, big)
                olen = _u16(buf, q + 2, big)
                if code == 0 or q + 4 + olen > bend:
                    break
                if code == 9 and olen >= 1:
                    r = buf[q + 4]
                    # picoseconds are fine; units per second beyond int64 are not a clock
                    if (r & 0x80 and (r & 0x7F) > 62) or (not r & 0x80 and r > 18):
                        why = 1
                        break
                    units[nif] = 2.0 ** (r & 0x7F) if r & 0x80 else 10.0**r
                elif code == 14 and olen >= 8:
                    hi = _u32(buf, q + 4, big)
                    lo = _u32(buf, q + 8, big)
                    tsoff[nif] = (hi << 32) | lo if big else (lo << 32) | hi
                q += 4 + ((olen + 3) & ~3)
            if why:
                break
            nif += 1
        elif btype in (2, 3, 6):
            if btype == 3:
                iid = base
                stamp = -1
                clen = min(_u32(buf, body, big), bend - body - 4)
                data = body + 4
            else:
                if bend - body < 20:
                    why = 1
                    break
                # Enhanced Packet blocks number interfaces in 32 bits, the obsolete Packet block in 16
                iid = base + (_u32(buf, body, big) if btype == 6 else _u16(buf, body, big))
                stamp = (_u32(buf, body + 4, big) << 32) | _u32(buf, body + 8, big)
                clen = _u32(buf, body + 12, big)
                data = body + 20
            if iid >= nif:
                why = 2
                break
            if btype == 3 and snaplens[iid] > 0:
                clen = min(clen, snaplens[iid])
            if clen < 0 or data + clen > bend:
                why = 1
                break
            if k == cap:
                cap *= 2
                off = np.resize(off, cap)
                caplen = np.resize(caplen, cap)
                ts = np.resize(ts, cap)
                iface = np.resize(iface, cap)
            off[k] = data
            caplen[k] = clen
            if stamp < 0:
                ts[k] = 0
            else:
                u = units[iid]
                whole = stamp // np.int64(u) if u >= 1 else 0
                frac = stamp - whole * np.int64(u) if u >= 1 else 0
                ts[k] = (whole + tsoff[iid]) * 1_000_000_000 + np.int64(frac * (1e9 / u))
            iface[k] = iid
            k += 1
        p += blen
    if why == 0 and p < n:
        why = 1  # a block header cut off at the end
    return off[:k], caplen[:k], ts[:k], iface[:k], links[:nif], p, why, nrb[:nn], nrb_big[:nn]


_WHY = {1: "damaged or truncated block", 2: "packet names an interface not described", 3: "too many interfaces"}


class PcapngReader(Reader):
    NAME = "pcapng"
    DOC = "pcapng capture file (draft-ietf-opsawg-pcapng); several sections and interfaces"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head[:4] == b"\x0a\x0d\x0d\x0a" and head[8:12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d")

    def read(self, data: Buffer) -> Capture:
        if not self.sniff(data[:12].tobytes()):
            raise TrafficError("not a pcapng file (no section header block)")
        off, caplen, ts, iface, links, stop, why, nrb, nrb_big = _walk(data)
        errors: tuple[DamageNote, ...] = ()
        if why:
            errors = (DamageNote(f"offset {stop}", f"{_WHY[why]}; read {off.size} packets before it"),)
        pf = flows_indexed(data, off, caplen, ts, links[iface])
        names = [_name_records(data, int(at), bool(big)) for at, big in zip(nrb, nrb_big, strict=True)]
        cap = capture_from_packets(self.NAME, data, pf, errors, {"linktypes": sorted({int(x) for x in links})})
        if not names:
            return cap
        merged = merge_names([{k: set(v) for k, v in cap.names.items()}, *names])
        return dataclasses.replace(cap, names=merged)


def _name_records(data: Buffer, at: int, big: bool) -> dict[tuple[int, int], set[str]]:
    """Addresses and names from a Name Resolution Block (pcapng section 4.5): what the capturing host
    resolved, written beside the packets."""
    order = ">" if big else "<"
    length = struct.unpack(order + "I", data[at + 4 : at + 8].tobytes())[0]
    body = data[at + 8 : at + length - 4].tobytes()
    out: dict[tuple[int, int], set[str]] = {}
    p = 0
    while p + 4 <= len(body):
        rtype, rlen = struct.unpack(order + "HH", body[p : p + 4])
        value = body[p + 4 : p + 4 + rlen]
        p += 4 + ((rlen + 3) & ~3)
        if rtype == 0:
            break
        size = {1: 4, 2: 16}.get(rtype)
        if size is None or len(value) <= size:
            continue
        try:
            key = address_key(ipaddress.ip_address(value[:size]))
        except ValueError:
            continue
        names = [n.decode("ascii", "replace").lower().rstrip(".") for n in value[size:].split(b"\0") if n]
        out.setdefault(key, set()).update(names)
    return out
