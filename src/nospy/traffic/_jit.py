"""Compiled helpers: the one place numba is imported.

Captures are walked record by record (pcap, pcapng and NetFlow records have variable lengths, and packets
are grouped into flows through a hash table); numpy cannot vectorise a walk whose next offset depends
on the previous record, so those loops are compiled with numba. ``cache=True`` keeps the compiled code
beside the module, so only the first run pays for compilation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., object])


def jit(fn: F) -> F:
    """``fn`` compiled in nopython mode; typed as ``fn`` so that callers keep mypy's checks."""
    return cast(F, numba.njit(cache=True, nogil=True, boundscheck=False)(fn))
