"""Safety limits of the unpacker: total unpacked bytes, compression ratio, nesting depth and time.

Every limit has a default that a real router or switch image stays well inside, and a CLI flag. A limit
that is reached never aborts the listing: the part of the image that would exceed it is reported as a
`TreeIssue` and everything else is still unpacked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from nospy.errors import InputError

__all__ = ["Budget", "LimitError", "Limits"]

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """How much work one image may cause.

    A frozen dataclass checked by hand rather than a pydantic model: ``nospy ls`` starts faster
    without importing pydantic, and four range checks need no schema.
    """

    max_bytes: int = 1 << 30
    """Total bytes the unpacker may hold decompressed in memory (streams, archive members, and the
    largest single file read out of a filesystem)."""
    max_ratio: float = 200.0
    """Largest output/input ratio of one compressed stream once its output passes 1 MiB (deflate tops
    out near 1032:1, so a bomb is caught long before memory runs out)."""
    max_depth: int = 10
    """Deepest nesting of containers unpacked (1-64)."""
    timeout: float = 300.0
    """Seconds the unpacking of one image may take."""

    def __post_init__(self) -> None:
        _check_int("max_bytes", self.max_bytes, 1, None)
        _check_int("max_depth", self.max_depth, 1, 64)
        # written as "not greater" so that NaN is refused too
        if not _is_number(self.max_ratio) or not self.max_ratio > 1.0:
            raise InputError(f"max_ratio: must be a number greater than 1, not {self.max_ratio!r}")
        if not _is_number(self.timeout) or not 0 < self.timeout < math.inf:
            raise InputError(f"timeout: must be a finite number of seconds greater than 0, not {self.timeout!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{name}: must be a whole number, not {value!r}")
    if value < low or (high is not None and value > high):
        within = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InputError(f"{name}: must be {within}, not {value}")


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
