"""Safety limits of the unpacker: total unpacked bytes, compression ratio, nesting depth and time.

Every limit has a default that a real router or switch image stays well inside, and a CLI flag. A limit
that is reached never aborts the listing: the part of the image that would exceed it is reported as a
`TreeIssue` and everything else is still unpacked.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from nospy.errors import InputError

__all__ = ["Budget", "LimitError", "Limits"]

MIB = 1 << 20


class Limits(BaseModel):
    """How much work one image may cause."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(
        1 << 30,
        gt=0,
        description="Total bytes the unpacker may hold decompressed in memory (streams, archive members, "
        "and the largest single file read out of a filesystem).",
    )
    max_ratio: float = Field(
        200.0,
        gt=1.0,
        description="Largest output/input ratio of one compressed stream once its output passes 1 MiB "
        "(deflate tops out near 1032:1, so a bomb is caught long before memory runs out).",
    )
    max_depth: int = Field(10, ge=1, le=64, description="Deepest nesting of containers unpacked.")
    timeout: float = Field(300.0, gt=0, description="Seconds the unpacking of one image may take.")


class LimitError(InputError):
    """A safety limit stopped the unpacking of one part of the image."""


class Budget:
    """What one `open_image` has used of its `Limits`; handlers call `charge` as they produce bytes."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.used = 0
        self.deadline = time.monotonic() + limits.timeout

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitError(f"time limit of {self.limits.timeout:g} s reached")

    def charge(self, produced: int, consumed: int | None = None) -> None:
        """Account ``produced`` new bytes (from ``consumed`` compressed bytes, for the ratio check)."""
        self.used += produced
        if self.used > self.limits.max_bytes:
            raise LimitError(f"unpacked-bytes limit of {self.limits.max_bytes} bytes reached")
        self.check_time()

    def check_ratio(self, produced: int, consumed: int) -> None:
        if produced > MIB and produced > self.limits.max_ratio * max(consumed, 1):
            raise LimitError(
                f"compression ratio above {self.limits.max_ratio:g} ({produced} bytes from {consumed}): "
                "a decompression bomb or not this format"
            )
