"""Egress aggregation: bytes, packets and flows by destination country and by destination host.

Which flows are egress (data leaving the customer's side):
- a destination of link scope (link-local unicast and multicast, limited broadcast, loopback) cannot
  leave the link: never egress;
- a destination inside the ``local`` networks the user names (the customer's own networks) stays home;
- a flow from a globally routable source to a private destination is traffic arriving from outside;
- every other flow is egress, including one to a private address outside ``local``: behind NAT or a
  tunnel it may go anywhere, so its "country" is private and fails closed.

Flows are grouped by destination with a compiled hash table, each distinct destination is geolocated
once, and the country totals are ``np.bincount`` over the destinations' country codes.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from nospy.traffic.flows import Flows, Network, address, group_flows_by_destination, in_networks
from nospy.traffic.geo import PRIVATE, GeoDatabase, Geolocator, code_text, not_global, status_of
from nospy.traffic.interface import Names

__all__ = ["CountryRow", "Egress", "HostRow", "Summary", "aggregate", "in_networks", "summarise"]

_LINK_SCOPE = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/24", "255.255.255.255/32",
        "::1/128", "fe80::/10", "ff01::/16", "ff02::/16",
    )
]  # fmt: skip


@dataclass(frozen=True)
class Egress:
    """Egress by destination: per-destination arrays (``hi`` .. ``nflows``), and the egress flows
    themselves, picked out of all the flows only when a rule asks for them."""

    all_flows: Flows
    group: npt.NDArray[np.int64]  # destination group of every flow
    dest_ok: npt.NDArray[np.bool_]  # per group: may a flow to it be egress
    inbound: npt.NDArray[np.bool_] | None  # per flow: a reply from outside (None: there is none)
    renumber: npt.NDArray[np.int64]  # per group: its destination number, -1 when it has no egress
    hi: npt.NDArray[np.uint64]
    lo: npt.NDArray[np.uint64]
    code: npt.NDArray[np.uint16]  # packed country code (geo.code_text)
    bytes: npt.NDArray[np.uint64]
    packets: npt.NDArray[np.uint64]
    nflows: npt.NDArray[np.int64]
    excluded: dict[str, int]  # flows that are not egress, by reason

    @functools.cached_property
    def mask(self) -> npt.NDArray[np.bool_]:
        """Which of all the flows are egress."""
        if self.inbound is None and self.dest_ok.all():
            return np.ones(len(self.all_flows), dtype=np.bool_)
        mask = self.dest_ok[self.group]
        return mask & ~self.inbound if self.inbound is not None else mask

    @functools.cached_property
    def flows(self) -> Flows:
        """The egress flows."""
        return self.all_flows if self.count == len(self.all_flows) else self.all_flows.take(self.mask)

    @functools.cached_property
    def flow_dest(self) -> npt.NDArray[np.int64]:
        """The destination number of each egress flow."""
        if self.count == len(self.all_flows):
            return self.renumber[self.group]
        return self.renumber[self.group[self.mask]]

    @property
    def count(self) -> int:
        return int(self.nflows.sum())


def aggregate(flows: Flows, geo: Geolocator, local: Sequence[Network] = ()) -> Egress:
    """Group ``flows`` by destination, geolocate each destination once, keep the egress flows."""
    groups = group_flows_by_destination(flows)
    group, first = groups.group, groups.first
    dhi, dlo = flows.dst_hi[first], flows.dst_lo[first]
    code = geo.codes(dhi, dlo)
    link = in_networks(dhi, dlo, _LINK_SCOPE)
    home = in_networks(dhi, dlo, list(local)) if local else np.zeros(dhi.size, dtype=np.bool_)
    dest_ok = ~link & ~home
    private = (code == PRIVATE) & dest_ok
    inbound = None
    nbytes, npackets, count = groups.bytes, groups.packets, groups.count
    if private.any():
        # a reply from a public address to a private one is traffic arriving, not leaving
        idx = np.flatnonzero(private[group])
        arriving = ~not_global(flows.src_hi[idx], flows.src_lo[idx])
        if arriving.any():
            inbound = np.zeros(len(flows), dtype=np.bool_)
            inbound[idx[arriving]] = True
            gone = group[inbound]
            n = dhi.size
            nbytes = nbytes - np.bincount(gone, weights=flows.bytes[inbound], minlength=n).astype(np.uint64)
            npackets = npackets - np.bincount(gone, weights=flows.packets[inbound], minlength=n).astype(np.uint64)
            count = count - np.bincount(gone, minlength=n)
    used = dest_ok & (count > 0)
    renumber = np.cumsum(used) - 1
    renumber[~used] = -1
    return Egress(
        all_flows=flows,
        group=group,
        dest_ok=dest_ok,
        inbound=inbound,
        renumber=renumber,
        hi=dhi[used],
        lo=dlo[used],
        code=code[used],
        bytes=nbytes[used],
        packets=npackets[used],
        nflows=count[used],
        excluded={
            "link_scope": int(groups.count[link].sum()),
            "local": int(groups.count[home & ~link].sum()),
            "inbound": 0 if inbound is None else int(inbound.sum()),
        },
    )


class CountryRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    country: str = Field(description="ISO 3166 alpha-2, or what the database said (EU, AP), private or unknown.")
    status: str = Field(description="country, region, anycast, private or unknown (only country can be allowed).")
    bytes: int
    packets: int
    flows: int
    destinations: int


class HostRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    address: str
    names: list[str] = Field(description="DNS names that resolved to the address in the capture.")
    country: str
    status: str
    bytes: int
    packets: int
    flows: int


class Summary(BaseModel):
    """Egress by country and by destination, with the geolocation database that placed them."""

    model_config = ConfigDict(frozen=True)
    geolocation: GeoDatabase
    flows: int = Field(description="All flows read.")
    egress_flows: int
    excluded: dict[str, int] = Field(description="Flows that are not egress, by reason.")
    by_country: list[CountryRow]
    by_destination: list[HostRow]


def summarise(flows: Flows, e: Egress, names: Names, geo: Geolocator) -> Summary:
    codes, inverse = np.unique(e.code, return_inverse=True)
    by_country = []
    for k, c in enumerate(codes):
        mine = inverse == k
        by_country.append(
            CountryRow(
                country=code_text(int(c)),
                status=status_of(int(c)).value,
                bytes=int(e.bytes[mine].sum()),
                packets=int(e.packets[mine].sum()),
                flows=int(e.nflows[mine].sum()),
                destinations=int(mine.sum()),
            )
        )
    by_country.sort(key=lambda r: -r.bytes)
    order = np.argsort(-e.bytes.astype(np.int64), kind="stable")
    hosts = [
        HostRow(
            address=address(int(e.hi[i]), int(e.lo[i])),
            names=sorted(names.get((int(e.hi[i]), int(e.lo[i])), ())),
            country=code_text(int(e.code[i])),
            status=status_of(int(e.code[i])).value,
            bytes=int(e.bytes[i]),
            packets=int(e.packets[i]),
            flows=int(e.nflows[i]),
        )
        for i in order
    ]
    return Summary(
        geolocation=geo.describe(),
        flows=len(flows),
        egress_flows=e.count,
        excluded=e.excluded,
        by_country=by_country,
        by_destination=hosts,
    )
