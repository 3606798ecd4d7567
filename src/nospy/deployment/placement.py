"""Placement rules: the agreement's ``placement`` section against a network inventory.

- ``placement.zone``: the vendor's devices in a zone the agreement does not list, or whose zone
  cannot be told (no zone is not an allowed zone: it fails rather than passes);
- ``placement.share``: in each allowed zone, the vendor's devices as a percentage of all the
  zone's devices, above ``max_share_percent`` (with the counts, and how many must be replaced);
- ``placement.site``: the vendor's devices at a site of an excluded kind.

Each finding names the devices, with the inventory row each came from and how its manufacturer was
matched to the agreement's vendor. Devices whose status is ``inventory`` (NetBox: spares in
storage) are not in the network and are not counted; every other status is, so planned equipment
shows up before it is installed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from nospy.agreement.schema import Agreement, Placement
from nospy.deployment.interface import Device, Inventory
from nospy.deployment.vendor import Match, VendorMatcher
from nospy.deployment.zones import SiteKindIndex, ZoneAssignment, ZoneIndex, Zones, fold
from nospy.findings import Finding

__all__ = ["NOT_IN_NETWORK", "PlacementResult", "check_placement"]

NOT_IN_NETWORK = frozenset({"inventory"})
_SHOWN = 10  # device names in a message; the evidence lists them all


@dataclass(frozen=True)
class _Placed:
    device: Device
    zone: ZoneAssignment
    vendor: Match | None

    def evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.device.name,
            "manufacturer": self.device.manufacturer,
            "role": self.device.role,
            "site": self.device.site,
            "status": self.device.status,
            "zone": self.zone.zone,
            "zone_from": self.zone.how,
            "location": self.device.location,
        }
        if self.vendor is not None:
            out["vendor_match"] = self.vendor.evidence()
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class PlacementResult:
    findings: list[Finding]
    summary: dict[str, Any]


def _names(placed: list[_Placed]) -> str:
    names = [p.device.name for p in placed[:_SHOWN]]
    more = len(placed) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_placement(agreement: Agreement, inventory: Inventory, zones: Zones, source: str) -> PlacementResult:
    """Findings of the placement rules (none if the agreement has no placement section)."""
    placement = agreement.placement
    matcher = VendorMatcher(agreement.vendor, zones.vendor_aliases)
    known = list(placement.zones) if placement else []
    index = ZoneIndex(zones, known)
    placed = [
        _Placed(d, index.assign(d), matcher.match(d.manufacturer))
        for d in inventory.devices
        if (d.status or "") not in NOT_IN_NETWORK
    ]
    summary = _summary(placed, inventory, agreement.vendor, matcher)
    if placement is None:
        return PlacementResult([], summary)
    findings = [
        *_zone_findings(placed, placement, agreement.vendor, source),
        *_share_findings(placed, placement, agreement.vendor, source),
        *_site_findings(placed, placement, zones, agreement.vendor, source),
    ]
    return PlacementResult(findings, summary)


def _summary(placed: list[_Placed], inventory: Inventory, vendor: str, matcher: VendorMatcher) -> dict[str, Any]:
    per_zone: dict[str, Counter[str]] = defaultdict(Counter)
    for p in placed:
        key = p.zone.zone or "(unknown)"
        per_zone[key]["devices"] += 1
        if p.vendor:
            per_zone[key]["vendor_devices"] += 1
    zones = {
        z: {
            "devices": c["devices"],
            "vendor_devices": c["vendor_devices"],
            "vendor_share_percent": round(100 * c["vendor_devices"] / c["devices"], 2),
        }
        for z, c in sorted(per_zone.items())
    }
    matched = sorted({p.vendor.manufacturer for p in placed if p.vendor})
    others = {p.device.manufacturer for p in placed if not p.vendor}
    return {
        "vendor": vendor,
        "devices": len(placed),
        "vendor_devices": sum(1 for p in placed if p.vendor),
        "manufacturers_matched": matched,
        "manufacturers_similar_not_matched": sorted(m for m in others if matcher.similar(m)),
        "not_in_network": sum(1 for d in inventory.devices if (d.status or "") in NOT_IN_NETWORK),
        "zones": zones,
        "formats": inventory.formats,
    }


def _allowed(zone: str | None, placement: Placement) -> bool:
    return zone is not None and fold(zone) in {fold(z) for z in placement.zones}


def _zone_findings(placed: list[_Placed], placement: Placement, vendor: str, source: str) -> list[Finding]:
    by_zone: dict[str | None, list[_Placed]] = defaultdict(list)
    for p in placed:
        if p.vendor and not _allowed(p.zone.zone, placement):
            by_zone[p.zone.zone].append(p)
    allowed = ", ".join(placement.zones) or "none"
    if not placement.zones and by_zone:
        # the agreement allows the vendor in no zone at all: where each device sits does not matter
        group = [p for g in by_zone.values() for p in g]
        message = f"{_plural(len(group), f'{vendor} device')} in the network, where the agreement allows none: "
        evidence = {"zone": None, "allowed_zones": [], "devices": [p.evidence() for p in group]}
        return [Finding.of("placement.zone", message + _names(group), location=source, evidence=evidence)]
    out = []
    for zone, group in sorted(by_zone.items(), key=lambda kv: (kv[0] is None, kv[0] or "")):
        if zone is None:
            message = (
                f"zone unknown for {_plural(len(group), f'{vendor} device')} ({_names(group)}): "
                f"cannot show they sit in an allowed zone ({allowed}); give them a zone or map their "
                "role, site or tags in the zones file"
            )
        else:
            message = (
                f"{_plural(len(group), f'{vendor} device')} in zone {zone!r}, where the agreement allows "
                f"{allowed}: {_names(group)}"
            )
        out.append(
            Finding.of(
                "placement.zone",
                message,
                location=source,
                evidence={
                    "zone": zone,
                    "allowed_zones": list(placement.zones),
                    "devices": [p.evidence() for p in group],
                },
            )
        )
    return out


def must_replace(vendor_count: int, total: int, max_percent: float) -> int:
    """The fewest of the vendor's devices to replace (by another vendor's) to bring the share to the cap."""
    cap = Fraction(str(max_percent)) * total / 100
    return max(0, vendor_count - math.floor(cap))


def _share_findings(placed: list[_Placed], placement: Placement, vendor: str, source: str) -> list[Finding]:
    if placement.max_share_percent is None:
        return []
    out = []
    for zone in placement.zones:
        in_zone = [p for p in placed if p.zone.zone is not None and fold(p.zone.zone) == fold(zone)]
        unzoned = sum(1 for p in placed if p.zone.zone is None)
        theirs = [p for p in in_zone if p.vendor]
        if not in_zone:
            continue
        share = Fraction(len(theirs) * 100, len(in_zone))
        if share <= Fraction(str(placement.max_share_percent)):
            continue
        k = must_replace(len(theirs), len(in_zone), placement.max_share_percent)
        out.append(
            Finding.of(
                "placement.share",
                f"{vendor} has {len(theirs)} of the {len(in_zone)} devices in zone {zone!r} "
                f"({float(share):.1f}%), above the agreed {placement.max_share_percent:g}%: replace at least "
                f"{k} of them ({_names(theirs)})",
                location=source,
                evidence={
                    "zone": zone,
                    "vendor_devices": len(theirs),
                    "zone_devices": len(in_zone),
                    "share_percent": round(float(share), 2),
                    "max_share_percent": placement.max_share_percent,
                    "must_replace": k,
                    # devices of no known zone are in no zone's count; some may belong to this one
                    "devices_of_unknown_zone": unzoned,
                    "devices": [p.evidence() for p in theirs],
                },
            )
        )
    return out


def _site_findings(
    placed: list[_Placed], placement: Placement, zones: Zones, vendor: str, source: str
) -> list[Finding]:
    groups: dict[tuple[str, str], list[tuple[_Placed, str]]] = defaultdict(list)
    index = SiteKindIndex(zones, placement.excluded_sites)
    for p in placed:
        if not p.vendor:
            continue
        for kind, how in index.find(p.device):
            groups[(kind, p.device.site or "(no site)")].append((p, how))
    out = []
    for (kind, site), group in sorted(groups.items()):
        devices = [p for p, _ in group]
        out.append(
            Finding.of(
                "placement.site",
                f"{_plural(len(devices), f'{vendor} device')} at site {site!r}, a {kind} site the agreement "
                f"excludes: {_names(devices)}",
                location=source,
                evidence={
                    "site_kind": kind,
                    "site": site,
                    "devices": [{**p.evidence(), "site_match": how} for p, how in group],
                },
            )
        )
    return out
