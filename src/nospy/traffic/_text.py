"""Shared helpers for the text flow logs (Zeek, Suricata, nfdump): rows of strings to flow columns."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

import numpy as np

from nospy.traffic.flows import Flows, address_key
from nospy.traffic.interface import DamageNote

__all__ = ["PROTOCOLS", "FlowRows", "parse_time"]

_COLUMNS = ("src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport", "proto", "bytes", "packets", "first", "last")

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "ipv6-icmp": 58, "icmpv6": 58, "icmp6": 58, "sctp": 132, "gre": 47}


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from epoch seconds or ISO 8601 (no zone: UTC); ValueError if neither."""
    try:
        whole, _, frac = text.partition(".")
        return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9]) if frac else int(whole) * 1_000_000_000
    except ValueError:
        pass
    # Suricata writes "+0000" zones, which fromisoformat accepts from Python 3.11 on
    stamp = datetime.datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.UTC)
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


@dataclass
class FlowRows:
    """Flows collected row by row; addresses are parsed once per distinct text."""

    cols: dict[str, list[int]] = field(default_factory=lambda: {k: [] for k in _COLUMNS})
    errors: list[DamageNote] = field(default_factory=list)
    _addr: dict[str, tuple[int, int]] = field(default_factory=dict)
    bad_rows: int = 0

    def key(self, text: str) -> tuple[int, int]:
        k = self._addr.get(text)
        if k is None:
            k = address_key(ipaddress.ip_address(text.strip()))
            self._addr[text] = k
        return k

    def add(  # noqa: PLR0917 - one flow row, in the column order
        self,
        src: str,
        dst: str,
        sport: int,
        dport: int,
        proto: int,
        nbytes: int,
        packets: int,
        first: int,
        last: int,
    ) -> None:
        s, d = self.key(src), self.key(dst)
        c = self.cols
        c["src_hi"].append(s[0])
        c["src_lo"].append(s[1])
        c["dst_hi"].append(d[0])
        c["dst_lo"].append(d[1])
        c["sport"].append(sport & 0xFFFF)
        c["dport"].append(dport & 0xFFFF)
        c["proto"].append(proto & 0xFF)
        c["bytes"].append(max(0, min(nbytes, 2**64 - 1)))
        c["packets"].append(max(0, min(packets, 2**64 - 1)))
        c["first"].append(max(-(2**63), min(first, 2**63 - 1)))
        c["last"].append(max(-(2**63), min(last, 2**63 - 1)))

    def bad(self, where: str, why: str) -> None:
        # only the first few damaged rows are itemised; the count says how many there were
        self.bad_rows += 1
        if self.bad_rows <= 5:
            self.errors.append(DamageNote(where, why))

    def flows(self) -> Flows:
        cols = {
            k: np.array(
                v, dtype=np.uint64 if k in ("src_hi", "src_lo", "dst_hi", "dst_lo", "bytes", "packets") else np.int64
            )
            for k, v in self.cols.items()
        }
        return Flows.from_columns(**cols)

    def notes(self) -> tuple[DamageNote, ...]:
        extra = (DamageNote("rows", f"{self.bad_rows} rows could not be read in all"),) if self.bad_rows > 5 else ()
        return (*self.errors, *extra)
