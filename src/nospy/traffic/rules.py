"""Traffic rules (DESIGN.md "Findings"): ``data.residency`` and ``traffic.undeclared-endpoint``.

``data.residency``: an egress destination the geolocation database does not place in one of
``data.countries`` (unknown, private, region-only and anycast places fail closed).
``traffic.undeclared-endpoint``: egress to a destination that no ``endpoints`` entry covers: a ``cidr``
containing the address or a ``host`` naming it (by DNS answers seen in the capture; ``*.`` matches
subdomains), with the entry's port and protocol when it gives them.

One finding per destination address; its evidence holds the flows behind it (the largest first), the
names, the country and the geolocation database's name and date.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nospy.agreement import Agreement
from nospy.agreement.schema import Clause, Endpoint, Protocol
from nospy.errors import InputError
from nospy.findings import ErrorEntry, Finding, Source
from nospy.traffic.aggregate import Egress, aggregate, summarise
from nospy.traffic.dns import merge_names
from nospy.traffic.flows import Network, address, in_networks
from nospy.traffic.geo import Geolocator, code_text, open_geolocator, status_of
from nospy.traffic.interface import Capture, Names, TrafficError
from nospy.traffic.read import read_capture
from nospy.verify import Progress, SourceResult

__all__ = [
    "EVIDENCE_FLOWS",
    "Captures",
    "TrafficSource",
    "evaluate",
    "host_matches",
    "parse_networks",
    "sources_for",
]

EVIDENCE_FLOWS = 20  # flows itemised per finding; the totals cover all of them

_PROTO = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}


def host_matches(pattern: str, name: str) -> bool:
    """A declared host against an observed DNS name (``*.example.com`` covers strict subdomains)."""
    name = name.lower().rstrip(".")
    if pattern.startswith("*."):
        return name.endswith(pattern[1:])
    return name == pattern


def _declared(e: Egress, names: Names, endpoints: Sequence[Endpoint]) -> npt.NDArray[np.bool_]:
    """Which egress flows some endpoint entry covers."""
    fl = e.flows
    covered = np.zeros(len(fl), dtype=np.bool_)
    dest_names = [names.get((int(h), int(lo)), frozenset()) for h, lo in zip(e.hi, e.lo, strict=True)]
    for ep in endpoints:
        if ep.cidr is not None:
            hit = in_networks(fl.dst_hi, fl.dst_lo, [ipaddress.ip_network(ep.cidr)])
        else:
            host = ep.host or ""  # the schema requires one of host or cidr
            try:
                literal = ipaddress.ip_address(host)
                hit = in_networks(fl.dst_hi, fl.dst_lo, [ipaddress.ip_network(literal)])
            except ValueError:
                dests = np.array([any(host_matches(host, n) for n in ns) for ns in dest_names], dtype=np.bool_)
                hit = dests[e.flow_dest] if dests.size else np.zeros(len(fl), dtype=np.bool_)
        if ep.port is not None:
            hit &= fl.dport == ep.port
        if ep.protocol is not None:
            hit &= fl.proto == _PROTO[ep.protocol]
        covered |= hit
    return covered


def _ports(e: Egress, rows: npt.NDArray[np.intp]) -> list[str]:
    pairs = zip(e.flows.dport[rows], e.flows.proto[rows], strict=True)
    return sorted({f"{int(p)}/{int(t)}" for p, t in pairs})[:50]


def _flow_evidence(e: Egress, rows: npt.NDArray[np.intp]) -> list[dict[str, Any]]:
    order = rows[np.argsort(-e.flows.bytes[rows].astype(np.int64), kind="stable")][:EVIDENCE_FLOWS]
    return [e.flows.row(int(i)) for i in order]


def evaluate(
    label: str, e: Egress, names: Names, geo: Geolocator, agreement: Agreement
) -> tuple[list[Finding], set[Clause]]:
    """The traffic findings for ``agreement`` and the clauses they test."""
    findings: list[Finding] = []
    checked: set[Clause] = set()
    db = geo.describe().model_dump(mode="json")
    by_dest = np.argsort(e.flow_dest, kind="stable")
    biggest_first = [int(i) for i in np.argsort(-e.bytes.astype(np.int64), kind="stable")]
    bounds = np.searchsorted(e.flow_dest[by_dest], np.arange(e.hi.size + 1))

    def base(i: int, rows: npt.NDArray[np.intp]) -> dict[str, Any]:
        code = int(e.code[i])
        return {
            "address": address(int(e.hi[i]), int(e.lo[i])),
            "names": sorted(names.get((int(e.hi[i]), int(e.lo[i])), ())),
            "country": code_text(code),
            "geolocation_status": status_of(code).value,
            "geolocation": db,
            "bytes": int(e.flows.bytes[rows].sum()),
            "packets": int(e.flows.packets[rows].sum()),
            "flow_count": int(rows.size),
            "ports": _ports(e, rows),
            "flows": _flow_evidence(e, rows),
        }

    if agreement.data is not None:
        checked.add(Clause.DATA)
        allowed = frozenset(agreement.data.countries)
        for i in biggest_first:
            code = int(e.code[i])
            if status_of(code).value == "country" and code_text(code) in allowed:
                continue
            rows = by_dest[bounds[i] : bounds[i + 1]]
            ev = base(i, rows)
            where = ev["address"] + (f" ({', '.join(ev['names'][:3])})" if ev["names"] else "")
            findings.append(
                Finding.of(
                    "data.residency",
                    f"{ev['bytes']} bytes in {ev['flow_count']} flows to {where}, located {ev['country']} "
                    f"by {db['name']} ({db['date']}); allowed: {', '.join(sorted(allowed)) or 'none'}",
                    location=f"{label}: flows to {ev['address']}",
                    evidence=ev,
                )
            )
    if agreement.endpoints is not None:
        checked.add(Clause.ENDPOINTS)
        covered = _declared(e, names, agreement.endpoints)
        for i in biggest_first:
            rows = by_dest[bounds[i] : bounds[i + 1]]
            rows = rows[~covered[rows]]
            if rows.size == 0:
                continue
            ev = base(i, rows)
            where = ev["address"] + (f" ({', '.join(ev['names'][:3])})" if ev["names"] else "")
            findings.append(
                Finding.of(
                    "traffic.undeclared-endpoint",
                    f"{ev['flow_count']} flows ({ev['bytes']} bytes) to {where} on {', '.join(ev['ports'][:5])}, "
                    "which no endpoints entry declares",
                    location=f"{label}: flows to {ev['address']}",
                    evidence=ev,
                )
            )
    return findings, checked


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


class Captures:
    """The captures of one check, each read once. DNS answers in any of them name the addresses in all
    of them: a pcap with the DNS traffic of the day names the destinations of that day's NetFlow."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._read: dict[Path, Capture | TrafficError] = {}

    def get(self, path: Path) -> Capture:
        if path not in self._read:
            try:
                self._read[path] = read_capture(path)
            except TrafficError as exc:
                self._read[path] = exc
        got = self._read[path]
        if isinstance(got, TrafficError):
            raise got
        return got

    def names(self) -> Names:
        parts = []
        for path in self.paths:
            try:
                parts.append({k: set(v) for k, v in self.get(path).names.items()})
            except TrafficError:
                continue  # reported by that capture's own source
        return merge_names(parts)


class TrafficSource:
    """A capture or flow log as evidence for ``nospy check`` (the `nospy.verify.EvidenceSource` plug-in)."""

    def __init__(
        self,
        path: Path,
        geolocator: Callable[[], Geolocator],
        local: Sequence[Network] = (),
        captures: Captures | None = None,
    ) -> None:
        self.path = path
        self._geo = geolocator
        self.local = list(local)
        self.captures = captures or Captures([path])

    @property
    def label(self) -> str:
        return f"traffic:{self.path}"

    def collect(self, agreement: Agreement | None, progress: Progress) -> SourceResult:
        capture = self.captures.get(self.path)
        names = self.captures.names()
        progress(f"{self.label}: {capture.format}, {capture.records} records, {len(capture.flows)} flows")
        geo = self._geo()
        egress = aggregate(capture.flows, geo, self.local)
        summary = summarise(capture.flows, egress, names, geo)
        findings: list[Finding] = []
        checked: set[Clause] = set()
        if agreement is not None:
            findings, checked = evaluate(self.label, egress, names, geo, agreement)
        inventory = summary.model_dump(mode="json")
        inventory["format"] = capture.format
        inventory["by_destination"] = inventory["by_destination"][:200]
        return SourceResult(
            source=Source(kind="traffic", path=str(self.path), sha256=_sha256(self.path)),
            checked=checked,
            findings=findings,
            errors=[ErrorEntry(source=self.label, location=n.location, message=n.message) for n in capture.errors],
            inventory=inventory,
        )


def parse_networks(values: Sequence[str]) -> list[Network]:
    """The customer's own networks, from CIDR text."""
    try:
        return [ipaddress.ip_network(v, strict=False) for v in values]
    except ValueError as exc:
        raise InputError(f"local network: {exc}") from None


def sources_for(paths: Sequence[Path], mmdb: Path | None, local: Sequence[str]) -> list[TrafficSource]:
    """The evidence sources for ``nospy check --traffic``, one per capture (see `nospy.evidence`).

    The geolocation database is loaded once, when the first capture needs it.
    """
    geo = functools.cache(lambda: open_geolocator(mmdb))
    nets = parse_networks(local)
    captures = Captures(paths)
    return [TrafficSource(p, geo, nets, captures) for p in paths]
