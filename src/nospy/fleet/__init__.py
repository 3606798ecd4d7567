"""Fleet scale: many firmware images scanned in parallel on Ray, sharing the content cache.

``nospy fleet scan`` runs one Ray task per image: on this machine's cores by default, on a Ray
cluster when an address is given (the same code path). Every worker reads and writes the content
cache (`nospy.firmware.cache`), so a release that shares most of its files with an earlier one costs
only what changed.
"""

from __future__ import annotations

from nospy.fleet.inputs import fleet_images, parse_list
from nospy.fleet.run import FleetResult, ImageResult, end_descendants, scan_fleet

__all__ = ["FleetResult", "ImageResult", "end_descendants", "fleet_images", "parse_list", "scan_fleet"]
