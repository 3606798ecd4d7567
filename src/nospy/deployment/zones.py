"""The zones file: how the operator's roles, sites and tags map to network zones and site kinds.

An agreement speaks of zones (``core``, ``aggregation``, ``access``, ``transport`` ...) and of site
kinds (``nuclear``, ``military``); an inventory speaks of roles, sites and tags. The zones file,
written by the operator, joins the two::

    zones:
      core:        {roles: [core-router, p-router], tags: [core]}
      aggregation: {roles: [aggregation-router]}
      access:      {roles: [access-switch, olt, enodeb], sites: [rural-pop-*]}
    site_kinds:
      nuclear:     {sites: [kudankulam-npp], tags: [nuclear]}
    vendor_aliases: [ACME, Acme Net]     # more names of the agreement's vendor

Names are compared folded (case, spaces, '_' and '-'), against both a NetBox object's name and its
slug; a trailing ``*`` matches any ending. A device's zone is, in order: the zone its inventory gives
it; the zone of one of its tags; of its role; of its site; or its role itself when the role is
named like a zone. Two zones at the same step make the zone ambiguous, which (like no zone at all)
fails the placement clause for the vendor's devices rather than passing them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nospy._fileio import read_limited
from nospy.deployment import _yaml
from nospy.deployment.interface import DeploymentError, Device

__all__ = ["MAX_ZONES_BYTES", "ZoneAssignment", "ZoneRule", "Zones", "fold", "parse_zones", "read_zones"]

MAX_ZONES_BYTES = 4 << 20

Name = str


def fold(name: str) -> str:
    return "-".join(name.replace("_", " ").replace("-", " ").casefold().split())


class ZoneRule(BaseModel):
    """The roles, sites and tags that put a device in one zone (or at one site kind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    roles: list[Name] = Field(default_factory=list)
    sites: list[Name] = Field(default_factory=list)
    tags: list[Name] = Field(default_factory=list)


class Zones(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    zones: dict[Name, ZoneRule] = Field(default_factory=dict)
    site_kinds: dict[Name, ZoneRule] = Field(default_factory=dict)
    vendor_aliases: list[Name] = Field(default_factory=list)


@dataclass(frozen=True)
class ZoneAssignment:
    zone: str | None
    how: str  # for evidence: "role 'core-router' (zones file)", "no zone: ..."


def _matches(pattern: str, names: Iterable[str | None]) -> bool:
    p = fold(pattern)
    for n in names:
        if not n:
            continue
        f = fold(n)
        if f == p or (p.endswith("*") and f.startswith(p[:-1])):
            return True
    return False


def assign_zone(device: Device, zones: Zones, known_zone_names: Iterable[str] = ()) -> ZoneAssignment:
    if device.zone:
        return ZoneAssignment(device.zone, f"zone {device.zone!r} given by the inventory")
    steps: list[tuple[str, str, list[str | None]]] = [
        ("tag", ", ".join(device.tags), [*device.tags, *device.tag_slugs]),
        ("role", device.role or "", [device.role, device.role_slug]),
        ("site", device.site or "", [device.site, device.site_slug]),
    ]
    for step, shown, names in steps:
        hits = [
            zone for zone, rule in zones.zones.items() if any(_matches(p, names) for p in getattr(rule, f"{step}s"))
        ]
        if len(hits) == 1:
            return ZoneAssignment(hits[0], f"{step} {shown!r} is in zone {hits[0]!r} (zones file)")
        if len(hits) > 1:
            return ZoneAssignment(None, f"zone ambiguous: {step} {shown!r} is in zones {', '.join(sorted(hits))}")
    candidates = {fold(z): z for z in [*zones.zones, *known_zone_names]}
    for name in (device.role, device.role_slug):
        if name and fold(name) in candidates:
            z = candidates[fold(name)]
            return ZoneAssignment(z, f"role {name!r} is named like zone {z!r}")
    return ZoneAssignment(None, "no zone: no zone column, and no tag, role or site of the zones file matches")


def site_kinds(device: Device, zones: Zones, excluded: Iterable[str]) -> list[tuple[str, str]]:
    """The excluded site kinds this device is at, each with how it matched."""
    found: list[tuple[str, str]] = []
    for kind in excluded:
        rule = zones.site_kinds.get(kind) or next(
            (r for k, r in zones.site_kinds.items() if fold(k) == fold(kind)), None
        )
        site_names = [device.site, device.site_slug]
        tag_names: list[str | None] = [*device.tags, *device.tag_slugs]
        if _matches(kind, site_names):
            found.append((kind, f"site {device.site!r} is named {kind!r}"))
        elif _matches(kind, tag_names):
            found.append((kind, f"tagged {kind!r}"))
        elif rule is not None and any(_matches(p, site_names) for p in rule.sites):
            found.append((kind, f"site {device.site!r} is a {kind} site (zones file)"))
        elif rule is not None and any(_matches(p, tag_names) for p in rule.tags):
            found.append((kind, f"a tag of the device marks a {kind} site (zones file)"))
        elif rule is not None and any(_matches(p, [device.role, device.role_slug]) for p in rule.roles):
            found.append((kind, f"role {device.role!r} only serves {kind} sites (zones file)"))
    return found


def read_zones(path: Path) -> Zones:
    return parse_zones(read_limited(path, MAX_ZONES_BYTES), str(path))


def parse_zones(data: bytes, source: str) -> Zones:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DeploymentError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    doc = _yaml.load(text, source)
    if doc is None:
        return Zones()
    if not isinstance(doc, dict):
        raise DeploymentError(f"{source}:1: a zones file is a mapping (zones:, site_kinds:, vendor_aliases:)")
    try:
        return Zones.model_validate(_plain(doc))
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = [p for p in err["loc"] if isinstance(p, (str, int))]
            line = _line_of(doc, loc)
            where = f"{source}:{line}" if line else source
            path = ".".join(str(p) for p in loc) or "(document)"
            lines.append(f"{where}: {path}: {err['msg']}")
        raise DeploymentError("\n".join(lines)) from None


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _line_of(doc: Any, loc: list[str | int]) -> int | None:
    node, line = doc, None
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            line = _yaml.key_line(node, part) or line
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line = _yaml.item_line(node, part) or line
            node = node[part]
        else:
            break
    return line
