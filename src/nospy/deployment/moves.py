"""The deployment report: what violates the agreement, and what must move where.

Built from the placement and residency findings (their evidence carries everything needed), so the
report and ``nospy check`` can never disagree. One entry per thing to move: a device out of a zone
or site, a number of devices to replace in a zone over its share, a data store to another region.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from nospy.findings import ErrorEntry, Finding

__all__ = ["Move", "MovePlan", "plan_moves", "render_text"]


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: str
    subject: str = Field(description="The device name, or the resource address.")
    now: str = Field(description="Where it is now: zone, site or region(s).")
    action: str = Field(description="What must be done.")
    allowed: list[str] = Field(default_factory=list, description="Where it may go (zones, regions).")
    location: str | None = Field(None, description="The inventory row or plan the subject comes from.")


class MovePlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    agreement: str
    moves: list[Move] = Field(default_factory=list)
    errors: list[ErrorEntry] = Field(default_factory=list)
    checked: list[str] = Field(default_factory=list, description="The evidence sources read.")
    zones: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per zone: devices, the vendor's devices and share (from the inventory)."
    )
    clauses: dict[str, str] = Field(
        default_factory=dict,
        description="placement and data: pass, fail, not-checked, or 'not in the agreement'.",
    )


def _zone_moves(f: Finding) -> list[Move]:
    ev = f.evidence
    allowed = [str(z) for z in ev.get("allowed_zones", [])]
    zone = ev.get("zone")
    out = []
    for d in ev.get("devices", []):
        if not allowed:
            action = "replace it with another vendor's: the agreement allows this vendor in no zone"
        elif zone is None:
            action = f"put it in zone {' or '.join(allowed)} and record that ({d.get('zone_from', 'no zone')})"
        else:
            action = f"move it out of zone {zone} to {' or '.join(allowed)}, or replace it with another vendor's"
        out.append(
            Move(
                rule=f.rule,
                subject=str(d.get("name")),
                now=f"zone {zone}" if zone else "zone unknown",
                action=action,
                allowed=allowed,
                location=d.get("location"),
            )
        )
    return out


def _share_moves(f: Finding) -> list[Move]:
    ev = f.evidence
    names = [str(d.get("name")) for d in ev.get("devices", [])]
    return [
        Move(
            rule=f.rule,
            subject=f"{ev.get('must_replace')} of {len(names)} devices in zone {ev.get('zone')}",
            now=(
                f"{ev.get('vendor_devices')}/{ev.get('zone_devices')} = {ev.get('share_percent')}% "
                f"(cap {ev.get('max_share_percent')}%)"
            ),
            action=f"replace at least {ev.get('must_replace')} of: {', '.join(names)}",
            location=f.location,
        )
    ]


def _site_moves(f: Finding) -> list[Move]:
    ev = f.evidence
    return [
        Move(
            rule=f.rule,
            subject=str(d.get("name")),
            now=f"site {ev.get('site')} ({ev.get('site_kind')})",
            action=f"remove it from the {ev.get('site_kind')} site ({d.get('site_match')})",
            location=d.get("location"),
        )
        for d in ev.get("devices", [])
    ]


def _residency_moves(f: Finding) -> list[Move]:
    ev = f.evidence
    targets: list[dict[str, Any]] = ev.get("may_move_to", [])
    allowed = [str(t.get("region")) for t in targets]
    countries = ", ".join(ev.get("allowed_countries", []))
    regions = ", ".join(ev.get("regions", [])) or "unknown"
    if ev.get("residency") == "unknown":
        action = (
            f"pin its region to one in {countries}"
            if allowed
            else f"move the data out of {ev.get('cloud')}: it has no region in {countries}"
        )
    elif allowed:
        outside = ", ".join(ev.get("countries", []))
        action = f"move the data stored in {outside} to a region in {countries}"
    else:
        action = f"move the data out of {ev.get('cloud')}: it has no region in {countries}"
    source = f.location.split("!", 1)[0] if f.location else None  # the address is the subject already
    return [
        Move(rule=f.rule, subject=str(ev.get("address")), now=regions, action=action, allowed=allowed, location=source)
    ]


def plan_moves(
    agreement_id: str,
    findings: Sequence[Finding],
    *,
    errors: Sequence[ErrorEntry] = (),
    checked: Sequence[str] = (),
    clauses: Mapping[str, str] | None = None,
    zones: Mapping[str, dict[str, Any]] | None = None,
) -> MovePlan:
    moves: list[Move] = []
    for f in findings:
        if f.rule == "placement.zone":
            moves += _zone_moves(f)
        elif f.rule == "placement.share":
            moves += _share_moves(f)
        elif f.rule == "placement.site":
            moves += _site_moves(f)
        elif f.rule == "data.residency" and "address" in f.evidence:
            moves += _residency_moves(f)
    return MovePlan(
        agreement=agreement_id,
        moves=moves,
        errors=list(errors),
        checked=list(checked),
        clauses=dict(clauses or {}),
        zones=dict(zones or {}),
    )


def render_text(plan: MovePlan, width: int = 140) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, highlight=False, force_terminal=False, soft_wrap=False)
    console.print(f"[bold]{plan.agreement}[/]: deployment report ({', '.join(plan.checked) or 'no evidence read'})")
    if plan.clauses:
        console.print(" · ".join(f"{clause}: {status}" for clause, status in plan.clauses.items()))
    if not plan.moves and plan.errors:
        console.print("[yellow]nothing to move was found, but some evidence could not be read:[/] see below")
    elif not plan.moves and not any(status in ("pass", "fail") for status in plan.clauses.values()):
        console.print("[yellow]nothing was checked:[/] the evidence given tests no clause of this agreement")
    elif not plan.moves:
        console.print("nothing must move: the deployment evidence read meets the agreement")
    for rule, title in (
        ("placement.zone", "devices in zones the agreement does not allow"),
        ("placement.share", "zones over the vendor's share"),
        ("placement.site", "devices at excluded sites"),
        ("data.residency", "data stored outside the agreed countries"),
    ):
        rows = [m for m in plan.moves if m.rule == rule]
        if not rows:
            continue
        table = Table(title=f"{title} ({len(rows)})", title_justify="left")
        for header in ("what", "now", "action", "may go to", "from"):
            table.add_column(header, overflow="fold")
        for m in rows:
            allowed = ", ".join(m.allowed[:6]) + (f" (+{len(m.allowed) - 6})" if len(m.allowed) > 6 else "")
            table.add_row(m.subject, m.now, m.action, allowed, m.location or "")
        console.print(table)
    if plan.zones:
        table = Table("zone", "devices", "vendor's", "share", title="the vendor's share by zone", title_justify="left")
        for zone, counts in plan.zones.items():
            table.add_row(
                zone,
                str(counts.get("devices", "")),
                str(counts.get("vendor_devices", "")),
                f"{counts.get('vendor_share_percent', 0)}%",
            )
        console.print(table)
    for e in plan.errors:
        console.print(f"[yellow]could not read[/] {e.source}{'!' + e.location if e.location else ''}: {e.message}")
    return buf.getvalue()
