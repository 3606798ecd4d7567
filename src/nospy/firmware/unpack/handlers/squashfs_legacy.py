"""squashfs 1.x and big-endian 4.0 trees, passed to Debian's ``unsquashfs`` (squashfs-tools).

dissect.squashfs reads little-endian 4.0 and `squashfs3` reads 2.x and 3.x; ``unsquashfs`` still reads
the oldest layout. The chunk is written to a private scratch directory (mode 0700, removed with the
tree), listed with ``-lln`` (numeric owners) and extracted there; files are then read with
``lstat``/``open`` only, never following links. References: squashfs-tools' ``unsquash-1.c``.

Limitations: needs ``unsquashfs`` on PATH; Debian's build rejects big-endian 4.0, which is then
reported as unreadable.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Literal

from nospy.firmware.unpack.base import Chunk, Context, FlatFilesystem, FormatError, Node, mode_type

# a device shows its major and minor numbers ("5,  1") where other entries show their size
_LINE = re.compile(
    r"^(?P<mode>[-dlcbps][-rwxsStT]{9}) (?P<uid>\d+)/(?P<gid>\d+)\s+"
    r"(?:(?P<device>\d+,\s*\d+)|(?P<size>[\d,]+))\s+\S+ \S+ (?P<path>.*)$"
)
_PERMS = {"r": 4, "w": 2, "x": 1}
_TYPES = {"-": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK, "c": stat.S_IFCHR, "b": stat.S_IFBLK}
_TYPES |= {"p": stat.S_IFIFO, "s": stat.S_IFSOCK}
_SB_HEAD = 48  # bytes_used: 32-bit at offset 8 in 1.x, 64-bit at offset 40 in 4.0


def _mode(text: str) -> int:
    mode = _TYPES[text[0]]
    for i, ch in enumerate(text[1:]):
        shift = 6 - (i // 3) * 3
        if ch in _PERMS:
            mode |= _PERMS[ch] << shift
        elif ch in "sStT":
            mode |= ({"s": 1, "S": 0, "t": 1, "T": 0}[ch]) << shift
            mode |= (stat.S_ISUID, stat.S_ISGID, stat.S_ISVTX)[i // 3]
    return mode


class _Extracted(FlatFilesystem):
    def __init__(self, scratch: tempfile.TemporaryDirectory[str], root: Path) -> None:
        super().__init__()
        self.scratch = scratch  # kept alive as long as the tree
        self.top = root.resolve()

    def open_file(self, ref: object) -> BinaryIO:
        assert isinstance(ref, Path)  # noqa: S101 - set by open_legacy
        # no component may lead out of the scratch tree, and the file itself must be regular
        if not ref.resolve().is_relative_to(self.top) or not stat.S_ISREG(ref.lstat().st_mode):
            raise FormatError("not a regular file inside the extracted tree")
        return ref.open("rb")


def open_legacy(data: memoryview, offset: int, ctx: Context, major: int, big: bool) -> Chunk | None:
    tool = shutil.which("unsquashfs")
    if tool is None:
        raise FormatError(f"squashfs {major}.x{' big-endian' if big else ''}: unsquashfs is not installed")
    head = bytes(data[offset : offset + _SB_HEAD])
    order: Literal["big", "little"] = "big" if big else "little"
    # bytes_used: 64-bit in 4.0, 32-bit (bytes_used_2) in 1.x
    size = int.from_bytes(head[40:48] if major == 4 else head[8:12], order)
    end = min(len(data), offset + size) if size > 0 else len(data)
    scratch = tempfile.TemporaryDirectory(prefix="nospy-sqfs-")
    base = Path(scratch.name)
    image = base / "image"
    image.write_bytes(data[offset:end])
    ctx.budget.charge(end - offset)
    root = base / "root"
    timeout = max(1.0, ctx.budget.deadline - time.monotonic())
    try:
        listing = subprocess.run(
            [tool, "-lln", "-d", "", str(image)], capture_output=True, text=True, timeout=timeout, check=False
        )
        subprocess.run(
            [tool, "-no-xattrs", "-f", "-d", str(root), str(image)], capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise FormatError("unsquashfs took longer than the time limit") from exc
    fs = _Extracted(scratch, root)
    count = 0
    for line in listing.stdout.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        path = m["path"]
        link = None
        if m["mode"][0] == "l" and " -> " in path:
            path, link = path.split(" -> ", 1)
        mode = _mode(m["mode"])
        kind = mode_type(mode)
        size = 0 if m["device"] else int(m["size"].replace(",", ""))
        node = Node(kind, stat.S_IMODE(mode), int(m["uid"]), int(m["gid"]), size, link)
        fs.add(path, node, root / path.lstrip("/"))
        count += 1
    if not count:
        raise FormatError(f"squashfs {major}.x: unsquashfs could not list it: {listing.stderr.strip()[:200]}")
    return Chunk(offset, end, filesystem=fs, label=f"squashfs{major}")
