"""The one place that turns evidence files into evidence sources (`nospy.verify.EvidenceSource`).

Both `nospy check` and `nospy serve` call `build_sources`; each kind's source is added here, one
line per kind, as it lands. A kind whose source is not part of this build raises `InputError`, so
evidence is never silently ignored.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from nospy.errors import InputError
from nospy.verify import EvidenceSource

__all__ = ["Kind", "build_sources"]


class Kind(StrEnum):
    FIRMWARE = "firmware"
    TRAFFIC = "traffic"
    INVENTORY = "inventory"
    INFRASTRUCTURE = "infrastructure"
    LOG = "log"


def build_sources(kind_to_paths: dict[str, list[Path]]) -> list[EvidenceSource]:
    """Evidence sources for ``{kind: [path, ...]}``; `InputError` for an unknown kind or one whose
    source this build does not have."""
    sources: list[EvidenceSource] = []
    for name, paths in kind_to_paths.items():
        if not paths:
            continue
        try:
            kind = Kind(name)
        except ValueError:
            raise InputError(f"unknown evidence kind {name!r} (known: {', '.join(Kind)})") from None
        # each kind's source is wired here as it lands on main, e.g.
        #     case Kind.FIRMWARE: sources += [FirmwareSource(p) for p in paths]
        raise InputError(f"{kind.value} evidence is not supported by this build of nospy yet")
    return sources
