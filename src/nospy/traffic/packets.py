"""Packet decoding, link layer to transport ports, compiled over a whole capture at once.

Link types are the tcpdump.org LINKTYPE_ values (draft-ietf-opsawg-pcaplinktype): NULL/LOOP (0, 108),
Ethernet (1) with IEEE 802.1Q/802.1ad VLAN tags (any depth), raw IP (12, 14, 101), Linux cooked
capture SLL (113) and SLL2 (276), IPv4 (228) and IPv6 (229). IP is RFC 791 and RFC 8200 (extension
headers skipped up to the transport header; fragments after the first carry no ports); ports come
from TCP (RFC 9293), UDP (RFC 768) and SCTP (RFC 9260).

A packet's byte count is its IP total length, as NetFlow counts octets; when the capture truncated
the packet (snaplen) the header still says how big it was on the wire.

One compiled pass walks the records, decodes each packet and adds it to its flow in an open-addressing
hash table keyed by the 5-tuple; no per-packet columns are written, so memory traffic stays at one read
of the capture. Packets that need a closer look in Python (DNS responses, UDP payloads that may be
NetFlow/IPFIX exports) are listed as they pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit
from nospy.traffic.flows import Flows, _mix

__all__ = ["LINKTYPES", "Interesting", "PacketFlows", "flows_indexed", "flows_pcap"]

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
def _parse(buf: U8, p: int, end: int, lt: int) -> tuple[Any, ...]:
    """One packet: (kind, src_hi, src_lo, dst_hi, dst_lo, sport, dport, proto, length, payload, payload_len).

    ``kind`` is 0 for a packet that is not IP, 1 for IP without a readable transport payload, 2 with one.
    """
    z = np.uint64(0)
    none = (0, z, z, z, z, 0, 0, 0, 0, 0, 0)
    ethertype = -1
    # link layer: find the network protocol and where it starts
    if lt == 1:
        if end - p < 14:
            return none
        ethertype = _be16(buf, p + 12)
        p += 14
    elif lt == 113:
        if end - p < 16:
            return none
        ethertype = _be16(buf, p + 14)
        p += 16
    elif lt == 276:
        if end - p < 20:
            return none
        ethertype = _be16(buf, p)
        p += 20
    elif lt in (0, 108):
        if end - p < 4:
            return none
        # NULL stores the address family in the capturing host's byte order, LOOP in network order
        fam = np.int64(buf[p]) | np.int64(buf[p + 3])
        p += 4
        if fam == 2:
            ethertype = 0x0800
        elif fam in (10, 24, 28, 30):
            ethertype = 0x86DD
        else:
            return none
    elif lt in (12, 14, 101, 228, 229):
        if end - p < 1:
            return none
        ethertype = 0x0800 if (buf[p] >> 4) == 4 else 0x86DD
    else:
        return none
    while ethertype in (0x8100, 0x88A8, 0x9100) and end - p >= 4:
        ethertype = _be16(buf, p + 2)
        p += 4
    l4: Any = -1
    shi = z
    dhi = z
    if ethertype == 0x0800:
        if end - p < 20 or (buf[p] >> 4) != 4:
            return none
        ihl = np.int64(buf[p] & 15) * 4
        if ihl < 20:
            return none
        total = _be16(buf, p + 2)
        if total == 0:  # TCP segmentation offload leaves the length unset
            total = end - p
        frag = _be16(buf, p + 6) & 0x1FFF
        nh: Any = np.int64(buf[p + 9])
        slo = np.uint64(0xFFFF00000000) | np.uint64(
            (np.int64(buf[p + 12]) << 24) | (np.int64(buf[p + 13]) << 16) | (np.int64(buf[p + 14]) << 8) | buf[p + 15]
        )
        dlo = np.uint64(0xFFFF00000000) | np.uint64(
            (np.int64(buf[p + 16]) << 24) | (np.int64(buf[p + 17]) << 16) | (np.int64(buf[p + 18]) << 8) | buf[p + 19]
        )
        if frag == 0:
            l4 = p + ihl
        ipend = min(end, p + total)
    elif ethertype == 0x86DD:
        if end - p < 40 or (buf[p] >> 4) != 6:
            return none
        total = _be16(buf, p + 4) + 40
        nh = np.int64(buf[p + 6])
        shi = _be64(buf, p + 8)
        slo = _be64(buf, p + 16)
        dhi = _be64(buf, p + 24)
        dlo = _be64(buf, p + 32)
        ipend = min(end, p + total)
        q: Any = p + 40
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
        return none
    proto = nh & 0xFF
    if l4 < 0 or nh not in (6, 17, 132) or ipend - l4 < 4:
        return (1, shi, slo, dhi, dlo, 0, 0, proto, total, 0, 0)
    sport = _be16(buf, l4)
    dport = _be16(buf, l4 + 2)
    start: Any = -1
    if nh == 6 and ipend - l4 >= 20:
        start = l4 + np.int64(buf[l4 + 12] >> 4) * 4
    elif nh == 17 and ipend - l4 >= 8:
        start = l4 + 8
    if start < 0 or start > ipend:
        return (1, shi, slo, dhi, dlo, sport, dport, proto, total, 0, 0)
    return (2, shi, slo, dhi, dlo, sport, dport, proto, total, start, ipend - start)


@jit
def _be32(buf: U8, p: int, big: bool) -> Any:
    if big:
        return (np.int64(buf[p]) << 24) | (np.int64(buf[p + 1]) << 16) | (np.int64(buf[p + 2]) << 8) | buf[p + 3]
    return (np.int64(buf[p + 3]) << 24) | (np.int64(buf[p + 2]) << 16) | (np.int64(buf[p + 1]) << 8) | buf[p]


MAX_SNAPLEN = 1 << 18  # larger pcap records are corrupt rather than jumbo frames


@jit
def _flows(  # noqa: PLR0917 - compiled kernels take their inputs positionally
    buf: U8,
    walk: bool,
    big: bool,
    scale: int,
    linktype: int,
    off: I64,
    caplen: I64,
    stamps: I64,
    link: npt.NDArray[np.int32],
) -> tuple[Any, ...]:
    """Every packet into its flow. ``walk``: read pcap records from offset 24 (byte order ``big``,
    ``scale`` ns per sub-second unit, one ``linktype``); otherwise the packets located by ``off``,
    ``caplen``, ``stamps`` and ``link`` (pcapng).
    """
    size = 1 << 12
    table = np.full(size, -1, dtype=np.int64)
    cap = 1 << 11
    shi = np.empty(cap, dtype=np.uint64)
    slo = np.empty(cap, dtype=np.uint64)
    dhi = np.empty(cap, dtype=np.uint64)
    dlo = np.empty(cap, dtype=np.uint64)
    sp = np.empty(cap, dtype=np.uint16)
    dp = np.empty(cap, dtype=np.uint16)
    pr = np.empty(cap, dtype=np.uint8)
    nbytes = np.empty(cap, dtype=np.uint64)
    npackets = np.empty(cap, dtype=np.uint64)
    first = np.empty(cap, dtype=np.int64)
    last = np.empty(cap, dtype=np.int64)
    nflows = 0
    # packets to look at in Python: payload offset, payload length, flow, IP length, source port
    icap = 1 << 8
    i_off = np.empty(icap, dtype=np.int64)
    i_len = np.empty(icap, dtype=np.int64)
    i_flow = np.empty(icap, dtype=np.int64)
    i_size = np.empty(icap, dtype=np.int64)
    i_sport = np.empty(icap, dtype=np.int64)
    ni = 0
    n = buf.size
    npk = 0
    nonip = 0
    p = 24
    k = 0
    while True:
        if walk:
            if p + 16 > n:
                break
            sec = _be32(buf, p, big)
            sub = _be32(buf, p + 4, big)
            incl = _be32(buf, p + 8, big)
            if incl > MAX_SNAPLEN or p + 16 + incl > n:
                break
            start = p + 16
            end = start + incl
            ts = sec * 1_000_000_000 + sub * scale
            lt = linktype
            p = end
        else:
            if k >= off.size:
                break
            start = off[k]
            end = start + caplen[k]
            ts = stamps[k]
            lt = link[k]
            k += 1
        npk += 1
        kind, a, b, c, d, sport, dport, proto, length, pay, paylen = _parse(buf, start, end, lt)
        if kind == 0:
            nonip += 1
            continue
        ports = (np.uint64(sport) << np.uint64(24)) | (np.uint64(dport) << np.uint64(8)) | np.uint64(proto)
        mask = size - 1
        slot = _mix(a, b, c, d, ports) & mask
        while True:
            j = table[slot]
            if j < 0:
                if nflows == cap:
                    cap *= 2
                    shi = np.resize(shi, cap)
                    slo = np.resize(slo, cap)
                    dhi = np.resize(dhi, cap)
                    dlo = np.resize(dlo, cap)
                    sp = np.resize(sp, cap)
                    dp = np.resize(dp, cap)
                    pr = np.resize(pr, cap)
                    nbytes = np.resize(nbytes, cap)
                    npackets = np.resize(npackets, cap)
                    first = np.resize(first, cap)
                    last = np.resize(last, cap)
                j = nflows
                nflows += 1
                table[slot] = j
                shi[j] = a
                slo[j] = b
                dhi[j] = c
                dlo[j] = d
                sp[j] = sport
                dp[j] = dport
                pr[j] = proto
                nbytes[j] = 0
                npackets[j] = 0
                first[j] = ts
                last[j] = ts
                if 2 * nflows > size:  # keep the load factor at most one half
                    size *= 2
                    mask = size - 1
                    table = np.full(size, -1, dtype=np.int64)
                    for f in range(nflows):
                        pf = (np.uint64(sp[f]) << np.uint64(24)) | (np.uint64(dp[f]) << np.uint64(8)) | np.uint64(pr[f])
                        s2 = _mix(shi[f], slo[f], dhi[f], dlo[f], pf) & mask
                        while table[s2] >= 0:
                            s2 = (s2 + 1) & mask
                        table[s2] = f
                break
            if (
                slo[j] == b
                and dlo[j] == d
                and sp[j] == sport
                and dp[j] == dport
                and pr[j] == proto
                and shi[j] == a
                and dhi[j] == c
            ):
                break
            slot = (slot + 1) & mask
        nbytes[j] += np.uint64(length)
        npackets[j] += np.uint64(1)
        first[j] = min(first[j], ts)
        last[j] = max(last[j], ts)
        if kind == 2 and paylen >= 12:
            dns = sport == 53 or (sport == 5353 and proto == 17)
            export = proto == 17 and paylen >= 20 and buf[pay] == 0 and (buf[pay + 1] in (5, 9, 10))
            if dns or export:
                if ni == icap:
                    icap *= 2
                    i_off = np.resize(i_off, icap)
                    i_len = np.resize(i_len, icap)
                    i_flow = np.resize(i_flow, icap)
                    i_size = np.resize(i_size, icap)
                    i_sport = np.resize(i_sport, icap)
                i_off[ni] = pay
                i_len[ni] = paylen
                i_flow[ni] = j if proto == 17 else -1 - j  # the sign says UDP
                i_size[ni] = length
                i_sport[ni] = sport
                ni += 1
    return (
        shi[:nflows], slo[:nflows], dhi[:nflows], dlo[:nflows], sp[:nflows], dp[:nflows], pr[:nflows],
        nbytes[:nflows], npackets[:nflows], first[:nflows], last[:nflows],
        i_off[:ni], i_len[:ni], i_flow[:ni], i_size[:ni], i_sport[:ni],
        npk, nonip, p,
    )  # fmt: skip


@dataclass(frozen=True)
class Interesting:
    """Packets for Python: DNS responses and possible flow exports (UDP when ``flow`` >= 0)."""

    payload: I64
    payload_len: I64
    flow: I64  # flow index; -1 - index for TCP
    size: I64  # IP length, to take an export packet back out of its flow
    sport: I64


@dataclass(frozen=True)
class PacketFlows:
    flows: Flows
    interesting: Interesting
    packets: int
    non_ip: int
    stop: int  # pcap: the offset where the record walk stopped


def _result(out: tuple[Any, ...]) -> PacketFlows:
    return PacketFlows(Flows(*out[:11]), Interesting(*out[11:16]), int(out[16]), int(out[17]), int(out[18]))


_NO_I64 = np.zeros(0, dtype=np.int64)
_NO_I32 = np.zeros(0, dtype=np.int32)


def flows_pcap(buf: U8, big: bool, scale: int, linktype: int) -> PacketFlows:
    """Walk classic pcap records from offset 24 and group their packets into flows."""
    return _result(_flows(buf, True, big, scale, linktype, _NO_I64, _NO_I64, _NO_I64, _NO_I32))


def flows_indexed(buf: U8, off: I64, caplen: I64, ts: I64, link: npt.NDArray[np.int32]) -> PacketFlows:
    """Group the packets located by ``off``/``caplen`` (pcapng) into flows."""
    return _result(_flows(buf, False, False, 1, 0, off, caplen, ts, np.ascontiguousarray(link, dtype=np.int32)))
