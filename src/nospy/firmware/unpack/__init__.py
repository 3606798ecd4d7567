"""Firmware unpacking: every container of a vendor image, recursively, into one virtual `FileTree`.

``open_image(path, limits)`` memory-maps the image, finds each known format at any offset (one
declarative handler per format in `handlers`), unpacks nested containers to ``limits.max_depth``,
and returns an `ImageTree`: the device's root filesystem at ``/``, everything else under ``/@image/``.
Nothing is written to disk except by the squashfs 1-3 fallback, into a private scratch directory.
"""

from __future__ import annotations

from nospy.firmware.unpack.image import PREFIX, ImageTree, open_data, open_image
from nospy.firmware.unpack.limits import LimitError, Limits

__all__ = ["PREFIX", "ImageTree", "LimitError", "Limits", "open_data", "open_image"]
