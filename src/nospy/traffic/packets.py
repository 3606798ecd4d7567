"""Packet decoding, link layer to transport ports, compiled over a whole capture at once.

Link types are the tcpdump.org LINKTYPE_ values (draft-ietf-opsawg-pcaplinktype): NULL/LOOP (0, 108),
Ethernet (1) with IEEE 802.1Q/802.1ad VLAN tags (any depth), raw IP (12, 14, 101), Linux cooked
capture SLL (113) and SLL2 (276), IPv4 (228) and IPv6 (229). IP is RFC 791 and RFC 8200 (extension
headers skipped up to the transport header; fragments after the first carry no ports); ports come
from TCP (RFC 9293), UDP (RFC 768) and SCTP (RFC 9260).

A packet's byte count is its IP total length, as NetFlow counts octets; when the capture truncated
the packet (snaplen) the header still says how big it was on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit
from nospy.traffic.flows import Flows, flows_from_packets

__all__ = ["LINKTYPES", "Decoded", "decode", "to_flows"]

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

LINKTYPES = {
    0: "NULL",
    1: "ETHERNET",
    12: "RAW",
    14: "RAW",
    101: "RAW",
    108: "LOOP",
    113: "LINUX_SLL",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}


@dataclass(frozen=True)
class Decoded:
    """Per-packet columns: ``ok`` marks IP packets; ``payload``/``payload_len`` locate the L4 payload."""

    ok: npt.NDArray[np.bool_]
    src_hi: npt.NDArray[np.uint64]
    src_lo: npt.NDArray[np.uint64]
    dst_hi: npt.NDArray[np.uint64]
    dst_lo: npt.NDArray[np.uint64]
    sport: npt.NDArray[np.uint16]
    dport: npt.NDArray[np.uint16]
    proto: npt.NDArray[np.uint8]
    length: npt.NDArray[np.uint64]
    payload: I64
    payload_len: I64


@jit
def _be16(buf: U8, i: int) -> Any:
    return (np.int64(buf[i]) << 8) | np.int64(buf[i + 1])


@jit
def _be64(buf: U8, i: int) -> np.uint64:
    v = np.uint64(0)
    for k in range(8):
        v = (v << np.uint64(8)) | np.uint64(buf[i + k])
    return v


@jit
def _decode(
    buf: U8,
    off: I64,
    caplen: I64,
    link: npt.NDArray[np.int32],
) -> tuple[
    npt.NDArray[np.bool_],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint16],
    npt.NDArray[np.uint16],
    npt.NDArray[np.uint8],
    npt.NDArray[np.uint64],
    I64,
    I64,
]:
    n = off.size
    ok = np.zeros(n, dtype=np.bool_)
    src_hi = np.zeros(n, dtype=np.uint64)
    src_lo = np.zeros(n, dtype=np.uint64)
    dst_hi = np.zeros(n, dtype=np.uint64)
    dst_lo = np.zeros(n, dtype=np.uint64)
    sport = np.zeros(n, dtype=np.uint16)
    dport = np.zeros(n, dtype=np.uint16)
    proto = np.zeros(n, dtype=np.uint8)
    length = np.zeros(n, dtype=np.uint64)
    payload = np.zeros(n, dtype=np.int64)
    payload_len = np.zeros(n, dtype=np.int64)
    mapped = np.uint64(0xFFFF00000000)
    for i in range(n):
        p = off[i]
        end = p + caplen[i]
        lt = link[i]
        ethertype = -1
        # link layer: find the network protocol and where it starts
        if lt == 1:
            if end - p < 14:
                continue
            ethertype = _be16(buf, p + 12)
            p += 14
        elif lt == 113:
            if end - p < 16:
                continue
            ethertype = _be16(buf, p + 14)
            p += 16
        elif lt == 276:
            if end - p < 20:
                continue
            ethertype = _be16(buf, p)
            p += 20
        elif lt in (0, 108):
            if end - p < 4:
                continue
            # NULL stores the address family in the capturing host's byte order, LOOP in network order
            fam = np.int64(buf[p]) | np.int64(buf[p + 3])
            p += 4
            if fam == 2:
                ethertype = 0x0800
            elif fam in (10, 24, 28, 30):
                ethertype = 0x86DD
            else:
                continue
        elif lt in (12, 14, 101, 228, 229):
            if end - p < 1:
                continue
            ethertype = 0x0800 if (buf[p] >> 4) == 4 else 0x86DD
        else:
            continue
        while ethertype in (0x8100, 0x88A8, 0x9100) and end - p >= 4:
            ethertype = _be16(buf, p + 2)
            p += 4
        l4 = -1
        nh: Any = -1
        if ethertype == 0x0800:
            if end - p < 20 or (buf[p] >> 4) != 4:
                continue
            ihl = np.int64(buf[p] & 15) * 4
            if ihl < 20:
                continue
            total = _be16(buf, p + 2)
            if total == 0:  # TCP segmentation offload leaves the length unset
                total = end - p
            frag = _be16(buf, p + 6) & 0x1FFF
            nh = np.int64(buf[p + 9])
            s = (np.uint64(buf[p + 12]) << np.uint64(24)) | (np.uint64(buf[p + 13]) << np.uint64(16))
            s |= (np.uint64(buf[p + 14]) << np.uint64(8)) | np.uint64(buf[p + 15])
            d = (np.uint64(buf[p + 16]) << np.uint64(24)) | (np.uint64(buf[p + 17]) << np.uint64(16))
            d |= (np.uint64(buf[p + 18]) << np.uint64(8)) | np.uint64(buf[p + 19])
            src_lo[i] = mapped | s
            dst_lo[i] = mapped | d
            length[i] = np.uint64(total)
            ok[i] = True
            if frag == 0:
                l4 = p + ihl
            ipend = min(end, p + total)
        elif ethertype == 0x86DD:
            if end - p < 40 or (buf[p] >> 4) != 6:
                continue
            total = _be16(buf, p + 4) + 40
            nh = np.int64(buf[p + 6])
            src_hi[i] = _be64(buf, p + 8)
            src_lo[i] = _be64(buf, p + 16)
            dst_hi[i] = _be64(buf, p + 24)
            dst_lo[i] = _be64(buf, p + 32)
            length[i] = np.uint64(total)
            ok[i] = True
            ipend = min(end, p + total)
            q = p + 40
            # extension headers: hop-by-hop, routing, destination options, fragment, authentication
            for _ in range(8):
                if nh in (0, 43, 60) and ipend - q >= 8:
                    nh = np.int64(buf[q])
                    q += (np.int64(buf[q + 1]) + 1) * 8
                elif nh == 51 and ipend - q >= 8:
                    nh = np.int64(buf[q])
                    q += (np.int64(buf[q + 1]) + 2) * 4
                elif nh == 44 and ipend - q >= 8:
                    first_fragment = (_be16(buf, q + 2) & 0xFFF8) == 0
                    nh = np.int64(buf[q])
                    q += 8
                    if not first_fragment:
                        q = -1
                        break
                else:
                    break
            l4 = q
        else:
            continue
        proto[i] = np.uint8(nh & 0xFF)
        if l4 < 0 or nh not in (6, 17, 132):
            continue
        if ipend - l4 < 4:
            continue
        sport[i] = np.uint16(_be16(buf, l4))
        dport[i] = np.uint16(_be16(buf, l4 + 2))
        start: Any
        if nh == 6 and ipend - l4 >= 20:
            start = l4 + np.int64(buf[l4 + 12] >> 4) * 4
        elif nh == 17 and ipend - l4 >= 8:
            start = l4 + 8
        else:
            continue
        if start <= ipend:
            payload[i] = start
            payload_len[i] = ipend - start
    return ok, src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto, length, payload, payload_len


def decode(buf: U8, off: I64, caplen: I64, link: npt.NDArray[np.int32]) -> Decoded:
    """Decode every packet located by ``off``/``caplen`` in ``buf``, each with its link type."""
    return Decoded(*_decode(buf, off, caplen, link))


def to_flows(d: Decoded, ts: I64, keep: npt.NDArray[np.bool_] | None = None) -> Flows:
    """The flows of the decoded packets (only those in ``keep``, when given)."""
    ok = d.ok if keep is None else d.ok & keep
    return flows_from_packets(ok, d.src_hi, d.src_lo, d.dst_hi, d.dst_lo, d.sport, d.dport, d.proto, d.length, ts)
