"""The one place that turns evidence files into evidence sources (`nospy.verify.EvidenceSource`).

Both `nospy check` and `nospy serve` call `build_sources`; each kind's source is added here, one
line per kind, as it lands. A kind whose source is not part of this build raises `InputError`, so
evidence is never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from nospy.errors import InputError
from nospy.keys import VerifierKey
from nospy.verify import EvidenceSource

if TYPE_CHECKING:
    from nospy.firmware.cache import ContentCache

__all__ = ["Kind", "SourceOptions", "build_sources"]


class Kind(StrEnum):
    FIRMWARE = "firmware"
    TRAFFIC = "traffic"
    INVENTORY = "inventory"
    INFRASTRUCTURE = "infrastructure"
    LOG = "log"


@dataclass(frozen=True)
class SourceOptions:
    """Settings that shape how evidence is read (not evidence themselves)."""

    zones: Path | None = None  # maps an inventory's roles, sites and tags to network zones
    log: str | None = None  # transparency log (folder or URL) that must hold each firmware image's release
    log_key: VerifierKey | None = None  # the log's checkpoint key
    geoip: Path | None = None  # MaxMind DB file for traffic geolocation (default: tor-geoipdb)
    traffic_local: tuple[str, ...] = ()  # CIDRs of the customer's own networks: flows to them are not egress
    cache: ContentCache | None = None  # firmware analysis results by content (nospy.firmware.cache)


def build_sources(kind_to_paths: dict[str, list[Path]], options: SourceOptions | None = None) -> list[EvidenceSource]:
    """Evidence sources for ``{kind: [path, ...]}``; `InputError` for an unknown kind or one whose
    source this build does not have."""
    # the sources are imported here, not at the top: every CLI command imports this module, and the
    # sources pull in numba, YARA-X and the unpackers, which `nospy --help` should not wait for
    from nospy.deployment.sources import sources_for as deployment_sources  # noqa: PLC0415
    from nospy.firmware.geo import as_country_lookup  # noqa: PLC0415
    from nospy.firmware.scan import FirmwareSource  # noqa: PLC0415
    from nospy.ledger.source import ReleaseLogSource  # noqa: PLC0415
    from nospy.traffic.geo import open_geolocator  # noqa: PLC0415
    from nospy.traffic.rules import sources_for as traffic_sources  # noqa: PLC0415

    options = options or SourceOptions()
    by_kind: dict[Kind, list[Path]] = {}
    for name, paths in kind_to_paths.items():
        try:
            kind = Kind(name)
        except ValueError:
            raise InputError(f"unknown evidence kind {name!r} (known: {', '.join(Kind)})") from None
        if paths:
            by_kind.setdefault(kind, []).extend(paths)
    firmware = by_kind.pop(Kind.FIRMWARE, [])
    sources: list[EvidenceSource] = []
    if firmware:
        # hard-coded addresses are placed in countries by the same database as traffic
        geo = as_country_lookup(open_geolocator(options.geoip))
        sources += [FirmwareSource(path, geo=geo, cache=options.cache) for path in firmware]
    if options.log is not None:
        if options.log_key is None:
            raise InputError("a transparency log is trusted only under its key: give --log-key")
        sources.append(ReleaseLogSource(options.log, options.log_key, firmware))
    # deployment: every inventory file is one network (shares are computed over all of them together)
    sources += deployment_sources(by_kind.pop(Kind.INVENTORY, []), options.zones, by_kind.pop(Kind.INFRASTRUCTURE, []))
    # traffic: one source per capture; DNS answers in any of them name the addresses in all
    sources += traffic_sources(by_kind.pop(Kind.TRAFFIC, []), options.geoip, options.traffic_local)
    for kind in by_kind:
        raise InputError(f"{kind.value} evidence is not supported by this build of nospy yet")
    return sources
