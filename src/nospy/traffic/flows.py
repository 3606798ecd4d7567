"""Flows: unidirectional 5-tuple records (the NetFlow/IPFIX model, RFC 7011 section 2), as numpy columns.

Every reader produces `Flows`: one row per flow with source and destination address, ports, IP protocol,
bytes (at the IP layer, as NetFlow's octet counters), packets and first/last seen in nanoseconds since
the Unix epoch. Addresses are 128-bit, split into two unsigned 64-bit columns; IPv4 is stored in its
IPv4-mapped IPv6 form (``::ffff:a.b.c.d``, RFC 4291 section 2.5.5.2) so that one column pair holds
both families and comparisons need no branch.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from nospy.traffic._jit import jit

__all__ = [
    "V4_MAPPED",
    "Flows",
    "Network",
    "address",
    "address_key",
    "group_by_address",
    "group_flows_by_destination",
    "in_networks",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

V4_MAPPED = np.uint64(0xFFFF_0000_0000)  # the low half of ::ffff:0:0/96, before the IPv4 address


@dataclass(frozen=True)
class Flows:
    """Flow records as parallel numpy columns (equal lengths)."""

    src_hi: U64
    src_lo: U64
    dst_hi: U64
    dst_lo: U64
    sport: npt.NDArray[np.uint16]
    dport: npt.NDArray[np.uint16]
    proto: npt.NDArray[np.uint8]
    bytes: U64
    packets: U64
    first: I64
    last: I64

    def __len__(self) -> int:
        return int(self.dst_lo.size)

    @classmethod
    def empty(cls) -> Flows:
        return cls.build(0)

    @classmethod
    def build(cls, n: int) -> Flows:
        """Zeroed columns for ``n`` flows."""
        return cls(**{f.name: np.zeros(n, dtype=_DTYPES[f.name]) for f in fields(cls)})

    @classmethod
    def concat(cls, parts: list[Flows]) -> Flows:
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    @classmethod
    def from_columns(cls, **cols: Any) -> Flows:
        """Columns of any integer type, converted to the flow dtypes."""
        return cls(**{f.name: np.ascontiguousarray(cols[f.name], dtype=_DTYPES[f.name]) for f in fields(cls)})

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Flows:
        return Flows(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def row(self, i: int) -> dict[str, Any]:
        """One flow as JSON-ready values (for evidence)."""
        return {
            "src": address(int(self.src_hi[i]), int(self.src_lo[i])),
            "dst": address(int(self.dst_hi[i]), int(self.dst_lo[i])),
            "sport": int(self.sport[i]),
            "dport": int(self.dport[i]),
            "proto": int(self.proto[i]),
            "bytes": int(self.bytes[i]),
            "packets": int(self.packets[i]),
            "first_ns": int(self.first[i]),
            "last_ns": int(self.last[i]),
        }


_DTYPES: dict[str, type[np.generic]] = {
    "src_hi": np.uint64,
    "src_lo": np.uint64,
    "dst_hi": np.uint64,
    "dst_lo": np.uint64,
    "sport": np.uint16,
    "dport": np.uint16,
    "proto": np.uint8,
    "bytes": np.uint64,
    "packets": np.uint64,
    "first": np.int64,
    "last": np.int64,
}


def address_key(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int]:
    """The (hi, lo) column values of an address."""
    value = int(ip) | (0xFFFF_0000_0000 if ip.version == 4 else 0)
    return value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF


def address(hi: int, lo: int) -> str:
    """The text form of a (hi, lo) pair; IPv4-mapped pairs print as IPv4."""
    if hi == 0 and lo >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFF_FFFF))
    return str(ipaddress.IPv6Address(hi << 64 | lo))


@jit
def _mix(a: Any, b: Any, c: Any, d: Any, e: Any) -> Any:
    # splitmix64-style mixing; the table size is a power of two, so the low bits must be well spread
    h = (a * np.uint64(0x9E3779B97F4A7C15)) ^ b
    h = (h ^ (h >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9) ^ c
    h = (h ^ (h >> np.uint64(29))) * np.uint64(0x94D049BB133111EB) ^ d
    h = (h ^ (h >> np.uint64(32))) * np.uint64(0x9E3779B97F4A7C15) ^ e
    return h ^ (h >> np.uint64(29))


@jit
def _group_pairs(hi: U64, lo: U64, nbytes: U64, npackets: U64) -> tuple[Any, ...]:
    n = hi.size
    # the table grows with the groups, not with the rows: few distinct destinations stay in cache
    size = 1 << 12
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    group = np.empty(n, dtype=np.int64)
    sum_bytes = np.zeros(n, dtype=np.uint64)
    sum_packets = np.zeros(n, dtype=np.uint64)
    count = np.zeros(n, dtype=np.int64)
    ngroups = 0
    for i in range(n):
        slot = _mix(hi[i], lo[i], 0, 0, 0) & mask
        while True:
            j = table[slot]
            if j < 0:
                j = ngroups
                table[slot] = j
                first[j] = i
                ngroups += 1
                if 2 * ngroups > size:
                    size *= 2
                    mask = size - 1
                    table = np.full(size, -1, dtype=np.int64)
                    for g in range(ngroups):
                        s2 = _mix(hi[first[g]], lo[first[g]], 0, 0, 0) & mask
                        while table[s2] >= 0:
                            s2 = (s2 + 1) & mask
                        table[s2] = g
                break
            k = first[j]
            if lo[k] == lo[i] and hi[k] == hi[i]:
                break
            slot = (slot + 1) & mask
        group[i] = j
        sum_bytes[j] += nbytes[i]
        sum_packets[j] += npackets[i]
        count[j] += 1
    return group, first[:ngroups], sum_bytes[:ngroups], sum_packets[:ngroups], count[:ngroups]


@dataclass(frozen=True)
class Groups:
    """Rows grouped by address: each row's group, and per group its first row and totals."""

    group: npt.NDArray[np.int64]
    first: npt.NDArray[np.int64]
    bytes: U64
    packets: U64
    count: npt.NDArray[np.int64]


def group_flows_by_destination(flows: Flows) -> Groups:
    """Flows grouped by destination address in one compiled pass, with bytes, packets and flow counts."""
    return Groups(*_group_pairs(flows.dst_hi, flows.dst_lo, flows.bytes, flows.packets))


def group_by_address(hi: U64, lo: U64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each row its group number, and for each group the first row: a hash group-by on addresses.

    A sort-based ``np.unique`` over 128-bit keys costs O(n log n); the hash table keeps aggregation linear.
    """
    zeros = np.zeros(hi.size, dtype=np.uint64)
    g = _group_pairs(np.ascontiguousarray(hi), np.ascontiguousarray(lo), zeros, zeros)
    return g[0], g[1]


def _bounds(net: Network) -> tuple[int, int]:
    lo = int(net.network_address)
    hi = int(net.broadcast_address)
    if net.version == 4:
        lo |= 0xFFFF_0000_0000
        hi |= 0xFFFF_0000_0000
    return lo, hi


def in_networks(hi: npt.NDArray[np.uint64], lo: npt.NDArray[np.uint64], nets: list[Network]) -> npt.NDArray[np.bool_]:
    """Which (hi, lo) addresses fall in any of ``nets`` (compared as 128-bit numbers)."""
    out = np.zeros(hi.size, dtype=np.bool_)
    mask64 = 0xFFFF_FFFF_FFFF_FFFF
    for net in nets:
        a, b = _bounds(net)
        ahi, alo, bhi, blo = np.uint64(a >> 64), np.uint64(a & mask64), np.uint64(b >> 64), np.uint64(b & mask64)
        above = (hi > ahi) | ((hi == ahi) & (lo >= alo))
        below = (hi < bhi) | ((hi == bhi) & (lo <= blo))
        out |= above & below
    return out
