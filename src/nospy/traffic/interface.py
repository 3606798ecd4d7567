"""The traffic reader interface: one small class per capture format, chosen by content.

A reader declares its ``NAME``, a ``DOC`` naming the format's specification and limits, a ``sniff``
that says from the first bytes whether a file is its format, and ``read`` that turns the whole file into
a `Capture`. Damage (a truncated capture, a malformed record) is recorded in ``Capture.errors`` and the
readable part is still used; only a file that is not the reader's format at all raises `TrafficError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from nospy.errors import InputError
from nospy.traffic.flows import Flows

__all__ = ["Buffer", "Capture", "DamageNote", "Names", "Reader", "TrafficError"]

Buffer = npt.NDArray[np.uint8]
Names = dict[tuple[int, int], frozenset[str]]  # address (hi, lo) -> DNS names that resolved to it


class TrafficError(InputError):
    """A capture or flow export that cannot be read."""


@dataclass(frozen=True)
class DamageNote:
    """Part of a capture that could not be read; the rest was used."""

    location: str
    message: str


@dataclass(frozen=True)
class Capture:
    """What a reader found in one file."""

    format: str
    flows: Flows
    names: Names = field(default_factory=dict)
    errors: tuple[DamageNote, ...] = ()
    records: int = 0  # packets or flow records read
    detail: dict[str, object] = field(default_factory=dict)


class Reader(ABC):
    """One capture or flow-export format."""

    NAME: ClassVar[str]
    DOC: ClassVar[str]

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes) -> bool:
        """True if a file starting with ``head`` (up to 4 KiB) is this format."""

    @abstractmethod
    def read(self, data: Buffer) -> Capture:
        """Every flow in ``data``; `TrafficError` if it is not this format at all."""
