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
fails the placement clause for the vendor's devices rather than passing them. A device is at an
excluded site kind when its site is named like the kind, it is tagged with the kind, or the zones
file lists its site, one of its tags or its role under the kind.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nospy._fileio import read_limited
from nospy.deployment import _yaml
from nospy.deployment.interface import DeploymentError, Device

__all__ = [
    "MAX_ZONES_BYTES",
    "SiteKindIndex",
    "ZoneAssignment",
    "ZoneIndex",
    "ZoneRule",
    "Zones",
    "assign_zone",
    "fold",
    "parse_zones",
    "read_zones",
    "site_kinds",
]

MAX_ZONES_BYTES = 4 << 20

Name = Annotated[str, Field(min_length=1, max_length=128)]


@functools.lru_cache(maxsize=1 << 16)  # inventories repeat the same few roles, sites and tags
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


class _Lookup:
    """Folded names -> the labels (zones, site kinds) whose patterns match them."""

    def __init__(self, rules: Iterable[tuple[str, str]]) -> None:
        self.exact: dict[str, set[str]] = defaultdict(set)
        self.prefix: list[tuple[str, str]] = []
        for pattern, label in rules:
            p = fold(pattern)
            if p.endswith("*"):
                self.prefix.append((p[:-1], label))
            else:
                self.exact[p].add(label)

    def find(self, names: Iterable[str | None]) -> set[str]:
        out: set[str] = set()
        for n in names:
            if not n:
                continue
            f = fold(n)
            out |= self.exact.get(f, set())
            out.update(label for pre, label in self.prefix if f.startswith(pre))
        return out


class ZoneIndex:
    """The zones file prepared for many devices: each device costs a few dictionary look-ups."""

    def __init__(self, zones: Zones, known_zone_names: Iterable[str] = ()) -> None:
        self.steps = [
            (step, _Lookup((p, zone) for zone, rule in zones.zones.items() for p in getattr(rule, f"{step}s")))
            for step in ("tag", "role", "site")
        ]
        self.named = {fold(z): z for z in [*zones.zones, *known_zone_names]}

    def assign(self, device: Device) -> ZoneAssignment:
        if device.zone:
            return ZoneAssignment(device.zone, f"zone {device.zone!r} given by the inventory")
        names: list[str | None]
        for step, lookup in self.steps:
            if step == "tag":
                shown, names = ", ".join(device.tags), [*device.tags, *device.tag_slugs]
            elif step == "role":
                shown, names = device.role or "", [device.role, device.role_slug]
            else:
                shown, names = device.site or "", [device.site, device.site_slug]
            hits = sorted(lookup.find(names))
            if len(hits) == 1:
                return ZoneAssignment(hits[0], f"{step} {shown!r} is in zone {hits[0]!r} (zones file)")
            if len(hits) > 1:
                return ZoneAssignment(None, f"zone ambiguous: {step} {shown!r} is in zones {', '.join(hits)}")
        for name in (device.role, device.role_slug):
            if name and fold(name) in self.named:
                z = self.named[fold(name)]
                return ZoneAssignment(z, f"role {name!r} is named like zone {z!r}")
        return ZoneAssignment(None, "no zone: no zone column, and no tag, role or site of the zones file matches")


def assign_zone(device: Device, zones: Zones, known_zone_names: Iterable[str] = ()) -> ZoneAssignment:
    """The zone of one device (for many, build a `ZoneIndex` once)."""
    return ZoneIndex(zones, known_zone_names).assign(device)


class SiteKindIndex:
    """The excluded site kinds, with the zones file's sites, tags and roles for each."""

    def __init__(self, zones: Zones, excluded: Iterable[str]) -> None:
        rules = {fold(k): r for k, r in zones.site_kinds.items()}
        kinds = list(excluded)
        self.by_name = _Lookup((k, k) for k in kinds)
        self.sites = _Lookup((p, k) for k in kinds for p in (rules[fold(k)].sites if fold(k) in rules else []))
        self.tags = _Lookup((p, k) for k in kinds for p in (rules[fold(k)].tags if fold(k) in rules else []))
        self.roles = _Lookup((p, k) for k in kinds for p in (rules[fold(k)].roles if fold(k) in rules else []))
        self.kinds = kinds

    def find(self, device: Device) -> list[tuple[str, str]]:
        """The excluded site kinds this device is at, each with how it matched."""
        site_names = [device.site, device.site_slug]
        tag_names: list[str | None] = [*device.tags, *device.tag_slugs]
        checks = [
            (self.by_name.find(site_names), f"site {device.site!r} is named {{kind!r}}"),
            (self.by_name.find(tag_names), "tagged {kind!r}"),
            (self.sites.find(site_names), f"site {device.site!r} is a {{kind}} site (zones file)"),
            (self.tags.find(tag_names), "a tag of the device marks a {kind} site (zones file)"),
            (
                self.roles.find([device.role, device.role_slug]),
                f"role {device.role!r} only serves {{kind}} sites (zones file)",
            ),
        ]
        found: list[tuple[str, str]] = []
        for kind in self.kinds:
            how = next((text for hits, text in checks if kind in hits), None)
            if how is not None:
                found.append((kind, how.format(kind=kind)))
        return found


def site_kinds(device: Device, zones: Zones, excluded: Iterable[str]) -> list[tuple[str, str]]:
    """The excluded site kinds one device is at (for many, build a `SiteKindIndex` once)."""
    return SiteKindIndex(zones, excluded).find(device)


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
