"""The images of a fleet scan: every file of a folder, or the paths named in a list file.

A list file is UTF-8 text, one image path a line; blank lines and lines starting with ``#`` are
skipped; relative paths are relative to the list's folder. It is untrusted input: a line that is not
a usable path is an error naming the file and line. Signed release manifests are not accepted here:
a manifest names an image by its digest, not where it is; ``nospy log`` and the monitor fetch and
verify releases.
"""

from __future__ import annotations

from pathlib import Path

from nospy.errors import InputError

__all__ = ["MAX_LIST_BYTES", "fleet_images", "parse_list"]

MAX_LIST_BYTES = 16 << 20  # a list of a million image paths is under this


def parse_list(data: bytes, base: Path, name: str) -> list[Path]:
    """The image paths of one list file's bytes (each once, in order); `InputError` on a bad line."""
    if len(data) > MAX_LIST_BYTES:
        raise InputError(f"{name}: a list of images larger than {MAX_LIST_BYTES >> 20} MiB")
    if b"\x00" in data[:8192]:
        raise InputError(f"{name}: binary data, not a list of image paths (to scan one image: nospy scan IMAGE)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{name}:{at}: not UTF-8 text") from None
    out: list[Path] = []
    seen: set[Path] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\x00" in line or any(ord(ch) < 0x20 for ch in line):
            raise InputError(f"{name}:{n}: control characters in a path")
        path = Path(line)
        path = path if path.is_absolute() else base / path
        try:
            is_file = path.is_file()
        except (OSError, ValueError) as exc:  # a name too long for the file system
            raise InputError(f"{name}:{n}: {line}: {exc}") from None
        if not is_file:
            raise InputError(f"{name}:{n}: {line}: no such image file")
        if path not in seen:
            seen.add(path)
            out.append(path)
    if not out:
        raise InputError(f"{name}: names no image")
    return out


def fleet_images(source: Path) -> list[Path]:
    """The images of a folder (its files, sorted by name, hidden ones skipped) or of a list file."""
    if source.is_dir():
        images = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        if not images:
            raise InputError(f"{source}: no image files in this folder")
        return images
    if not source.is_file():
        raise InputError(f"{source}: no such folder or list file")
    try:
        if source.stat().st_size > MAX_LIST_BYTES:
            raise InputError(f"{source}: a list of images larger than {MAX_LIST_BYTES >> 20} MiB")
        data = source.read_bytes()
    except OSError as exc:
        raise InputError(f"{source}: {exc.strerror or exc}") from None
    return parse_list(data, source.parent, str(source))
