"""Finding a release's image in the image store (a folder), by content.

Where it may be, in order: ``STORE/<sha256>``, ``STORE/<sha256[:2]>/<sha256>`` (the web service's
blob layout), then ``STORE/<name>`` with the manifest's subject name when that is a plain file name
(no folder part, no ``..``: the name comes from the log and is not trusted to pick a path). Whatever
file is found is hashed, and used only when its SHA-256 is the one the signed release names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nospy.errors import InputError
from nospy.ledger.release import sha256_file

__all__ = ["Lookup", "find_image"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+@-]{0,254}")


@dataclass(frozen=True)
class Lookup:
    """The image found (``path``), or why none was (``problem``)."""

    path: Path | None
    problem: str | None = None


def candidates(store: Path, sha256: str, name: str) -> list[Path]:
    if not _SHA256.fullmatch(sha256):
        raise InputError(f"not a SHA-256 digest: {sha256[:80]!r}")
    out = [store / sha256, store / sha256[:2] / sha256]
    if _PLAIN_NAME.fullmatch(name) and ".." not in name:
        out.append(store / name)
    return out


def find_image(store: Path, sha256: str, name: str) -> Lookup:
    """The file in ``store`` whose SHA-256 is ``sha256`` (see the module docstring for where it looks)."""
    mismatched: list[str] = []
    for path in candidates(store, sha256, name):
        if not path.is_file():
            continue
        try:
            digest = sha256_file(path)
        except InputError as exc:
            mismatched.append(str(exc))
            continue
        if digest == sha256:
            return Lookup(path)
        mismatched.append(f"{path.name} has sha256 {digest}")
    where = f"{store}/{sha256}" + (f" or {store}/{name}" if _PLAIN_NAME.fullmatch(name) and ".." not in name else "")
    problem = f"image sha256 {sha256} is not in the image store (looked for {where})"
    if mismatched:
        problem += "; found but not this image: " + "; ".join(mismatched)
    return Lookup(None, problem)
