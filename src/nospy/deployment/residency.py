"""The storage-residency rule: data stores outside the agreement's ``data.countries``.

A store passes only when every region it stores data in is in the region table and every country of
every such region is allowed. A store whose region could not be resolved, or whose region is not in
the table, is a ``data.residency`` finding ("residency unknown"), not a pass. Each finding names the
resource address and its regions, and lists the regions of the same cloud the data may move to.
"""

from __future__ import annotations

from typing import Any

from nospy.agreement.schema import Agreement
from nospy.deployment.interface import DataStore, Region
from nospy.deployment.regions import RegionTable
from nospy.findings import Finding

__all__ = ["check_residency", "store_summary"]

_TARGETS_SHOWN = 6


def _targets(table: RegionTable, store: DataStore, allowed: set[str]) -> list[dict[str, Any]]:
    return [
        {"region": r.id, "name": r.name, "countries": r.countries, "kind": r.kind}
        for r in table.within(store.cloud, allowed)
    ]


def _target_text(targets: list[dict[str, Any]], cloud: str, countries: list[str]) -> str:
    if not targets:
        return f"{cloud} has no region in {', '.join(countries)}: the data must leave {cloud}"
    shown = ", ".join(f"{t['region']} ({t['name']})" for t in targets[:_TARGETS_SHOWN])
    more = len(targets) - _TARGETS_SHOWN
    return f"move it to {shown}" + (f" or {more} more" if more > 0 else "")


def check_residency(agreement: Agreement, stores: list[DataStore], table: RegionTable, source: str) -> list[Finding]:
    if agreement.data is None:
        return []
    countries = list(agreement.data.countries)
    allowed = set(countries)
    out = []
    for store in stores:
        targets = _targets(table, store, allowed)
        evidence: dict[str, Any] = {
            "address": store.address,
            "type": store.type,
            "cloud": store.cloud.value,
            "kind": store.kind,
            "regions": store.regions,
            "region_source": store.region_source.value if store.region_source else None,
            "region_detail": store.region_detail,
            "allowed_countries": countries,
            "may_move_to": targets,
            "region_table": table.citation,
        }
        if store.provider_key:
            evidence["provider"] = store.provider_key
        location = f"{source}!{store.address}"
        if not store.regions:
            out.append(
                Finding.of(
                    "data.residency",
                    f"residency unknown: {store.address} ({store.kind}): its region cannot be resolved "
                    f"({store.region_detail})",
                    location=location,
                    evidence={**evidence, "residency": "unknown"},
                )
            )
            continue
        known: list[Region] = []
        unknown: list[str] = []
        for rid in store.regions:
            region = table.get(store.cloud, rid)
            if region is None:
                unknown.append(rid)
            else:
                known.append(region)
        if unknown:
            out.append(
                Finding.of(
                    "data.residency",
                    f"residency unknown: {store.address} ({store.kind}) is in {store.cloud.value} region "
                    f"{', '.join(unknown)}, which is not in the region table ({table.citation})",
                    location=location,
                    evidence={**evidence, "residency": "unknown", "unknown_regions": unknown},
                )
            )
            continue
        outside = [r for r in known if not set(r.countries) <= allowed]
        if outside:
            where = "; ".join(f"{r.id} ({r.name}, {'/'.join(r.countries)})" for r in outside)
            out.append(
                Finding.of(
                    "data.residency",
                    f"{store.address} ({store.kind}) stores data in {where}, outside {', '.join(countries)}: "
                    + _target_text(targets, store.cloud.value, countries),
                    location=location,
                    evidence={
                        **evidence,
                        "residency": "outside",
                        "countries": sorted({c for r in outside for c in r.countries}),
                    },
                )
            )
    return out


def store_summary(stores: list[DataStore], table: RegionTable) -> list[dict[str, Any]]:
    """Every data store read, with its regions and their countries (for the report's inventory)."""
    out = []
    for s in stores:
        countries = sorted({c for rid in s.regions if (r := table.get(s.cloud, rid)) is not None for c in r.countries})
        out.append(
            {
                "address": s.address,
                "type": s.type,
                "kind": s.kind,
                "regions": s.regions,
                "countries": countries,
                "region_source": s.region_source.value if s.region_source else None,
                "region_detail": s.region_detail,
            }
        )
    return out
