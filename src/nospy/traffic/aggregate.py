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
    """Egress flows grouped by destination; arrays are per destination unless named ``flow_``."""

    flows: Flows  # the egress flows
    mask: npt.NDArray[np.bool_]  # which of the flows given are egress
    flow_dest: npt.NDArray[np.int64]  # destination number of each egress flow
    hi: npt.NDArray[np.uint64]
    lo: npt.NDArray[np.uint64]
    code: npt.NDArray[np.uint16]  # packed country code (geo.code_text)
    bytes: npt.NDArray[np.uint64]
    packets: npt.NDArray[np.uint64]
    nflows: npt.NDArray[np.int64]
    excluded: dict[str, int]  # flows that are not egress, by reason


def aggregate(flows: Flows, geo: Geolocator, local: Sequence[Network] = ()) -> Egress:
    """Group ``flows`` by destination, geolocate each destination once, keep the egress flows."""
    groups = group_flows_by_destination(flows)
    group, first = groups.group, groups.first
    dhi, dlo = flows.dst_hi[first], flows.dst_lo[first]
    code = geo.codes(dhi, dlo)
    link = in_networks(dhi, dlo, _LINK_SCOPE)
    home = in_networks(dhi, dlo, list(local)) if local else np.zeros(dhi.size, dtype=np.bool_)
    private = (code == PRIVATE) & ~link & ~home
    inbound = np.zeros(len(flows), dtype=np.bool_)
    if private.any():
        # a reply from a public address to a private one is traffic arriving, not leaving
        idx = np.flatnonzero(private[group])
        inbound[idx] = ~not_global(flows.src_hi[idx], flows.src_lo[idx])
    if not link.any() and not home.any() and not inbound.any():
        # every flow is egress: the totals of the grouping pass are the answer
        return Egress(
            flows=flows,
            mask=np.ones(len(flows), dtype=np.bool_),
            flow_dest=group,
            hi=dhi,
            lo=dlo,
            code=code,
            bytes=groups.bytes,
            packets=groups.packets,
            nflows=groups.count,
            excluded={"link_scope": 0, "local": 0, "inbound": 0},
        )
    flow_link, flow_home = link[group], home[group]
    egress = ~flow_link & ~flow_home & ~inbound
    eg = flows.take(egress) if not egress.all() else flows
    g = group[egress]
    # renumber the destinations that have egress flows
    used = np.zeros(dhi.size, dtype=np.bool_)
    used[g] = True
    renum = np.cumsum(used) - 1
    dest = renum[g]
    n = int(used.sum())
    return Egress(
        flows=eg,
        mask=egress,
        flow_dest=dest,
        hi=dhi[used],
        lo=dlo[used],
        code=code[used],
        bytes=np.bincount(dest, weights=eg.bytes.astype(np.float64), minlength=n).astype(np.uint64),
        packets=np.bincount(dest, weights=eg.packets.astype(np.float64), minlength=n).astype(np.uint64),
        nflows=np.bincount(dest, minlength=n).astype(np.int64),
        excluded={
            "link_scope": int(flow_link.sum()),
            "local": int((flow_home & ~flow_link).sum()),
            "inbound": int(inbound.sum()),
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
        egress_flows=len(e.flows),
        excluded=e.excluded,
        by_country=by_country,
        by_destination=hosts,
    )
