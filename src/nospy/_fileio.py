"""Small file helpers: size-limited reads and atomic writes (a crash never leaves half a file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nospy.errors import InputError


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of ``path``; an `InputError` if unreadable or larger than ``limit``."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit} bytes")
    return data


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, fsynced."""
    if not overwrite and path.exists():
        raise InputError(f"{path}: already exists (not overwritten)")
    directory = path.parent if str(path.parent) else Path()
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if not overwrite and path.exists():
            raise InputError(f"{path}: already exists (not overwritten)")
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
