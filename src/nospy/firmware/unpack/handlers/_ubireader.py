"""The part of the UBI and UBIFS handlers (`nospy.firmware.unpack.handlers.ubi`) that uses ``ubi-reader``:
imported only once a UBI or UBIFS magic is found, as ubi-reader (and the ``cryptography`` it loads for
encrypted UBIFS) costs most images' listing 30 ms for nothing.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

from ubireader import settings
from ubireader.ubi import ubi as ubi_image
from ubireader.ubi_io import leb_virtual_file, ubi_file
from ubireader.ubifs import ubifs as ubifs_image
from ubireader.ubifs import walk
from ubireader.ubifs.defines import UBIFS_ITYPE_DIR, UBIFS_ITYPE_LNK
from ubireader.ubifs.misc import process_reg_file

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack.base import Blob, Context, Filesystem, FormatError, Node, mode_type
from nospy.firmware.unpack.base import ViewIO as _ViewIO

__all__ = ["open_ubifs", "read_volumes"]

settings.warn_only_block_read_errors = True
_STDOUT_LOCK = threading.Lock()  # a bad block is reported, the rest still read


class _MemFile(ubi_file):
    """ubi-reader's file object over memory instead of a path."""

    def __init__(self, view: memoryview, block_size: int) -> None:
        self.__name__ = "UBI_File"
        self._fhandle = _ViewIO.stream(view)  # type: ignore[assignment]  # the base holds an open file
        self._start_offset = 0
        self._end_offset = len(view)
        self._block_size = block_size
        self._last_read_addr = 0
        self.is_valid = True


@contextlib.contextmanager
def _quiet(ctx: Context, offset: int) -> Iterator[None]:
    """ubi-reader prints its warnings and calls sys.exit on fatal ones: both become report entries."""
    out = io.StringIO()
    try:
        # the lock: files of another UBIFS may be read by threads meanwhile (see _UbifsFs.open_file)
        with _STDOUT_LOCK, contextlib.redirect_stdout(out):
            yield
    except SystemExit as exc:
        raise FormatError(out.getvalue().strip().splitlines()[-1] if out.getvalue().strip() else "unreadable") from exc
    finally:
        for line in out.getvalue().splitlines()[:20]:
            ctx.issue(offset, f"ubi-reader: {line.strip()}")


class _UbifsFs(Filesystem):
    def __init__(self, fs: ubifs_image, inodes: dict[int, Any]) -> None:
        self.fs = fs
        self.inodes = inodes

    def _node(self, inum: int, dtype: int | None) -> Node:
        inode = self.inodes.get(inum)
        if inode is None or "ino" not in inode:
            raise FormatError(f"inode {inum} missing")
        ino = inode["ino"]
        mode: int = ino.mode
        kind = mode_type(mode)
        link = None
        if dtype == UBIFS_ITYPE_LNK or kind is EntryType.SYMLINK:
            kind = EntryType.SYMLINK
            link = bytes(ino.data).decode("utf-8", "surrogateescape")
        size = ino.size if kind in {EntryType.FILE, EntryType.SYMLINK} else 0
        return Node(kind, mode & 0o7777, ino.uid, ino.gid, size, link)

    def root(self) -> tuple[Node, object]:
        return self._node(1, UBIFS_ITYPE_DIR), 1

    def key(self, ref: object) -> object:
        return ref

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        assert isinstance(ref, int)  # noqa: S101 - handles are inode numbers
        out = []
        for dent in self.inodes.get(ref, {}).get("dent", []):
            out.append((dent.name, self._node(dent.inum, dent.type), dent.inum))
        return out

    def open_file(self, ref: object) -> BinaryIO:
        assert isinstance(ref, int)  # noqa: S101 - handles are inode numbers
        # sys.stdout is process-wide: threads reading at once must not interleave their redirections
        with _STDOUT_LOCK, contextlib.redirect_stdout(io.StringIO()):
            data = process_reg_file(self.fs, self.inodes[ref], "", self.inodes)
        return io.BytesIO(bytes(data))


def open_ubifs(view: memoryview, leb_size: int, ctx: Context, offset: int) -> _UbifsFs:
    """The UBIFS filesystem in ``view`` (LEBs of ``leb_size`` bytes), its index read whole."""
    source = _MemFile(view, leb_size)
    with _quiet(ctx, offset):
        fs = ubifs_image(source)
        inodes: dict[int, Any] = {}
        bad: list[int] = []
        walk.index(fs, fs.master_node.root_lnum, fs.master_node.root_offs, inodes, bad)
    if bad:
        ctx.issue(offset, f"ubifs: bad LEBs {bad[:20]}: data may be missing")
    if 1 not in inodes:
        raise FormatError("ubifs: no root inode")
    return _UbifsFs(fs, inodes)


def read_volumes(view: memoryview, peb: int, ctx: Context, offset: int) -> list[Blob]:
    """Every volume of a UBI image (its PEBs in ``view``), as a payload named after it."""
    blobs = []
    with _quiet(ctx, offset):
        image = ubi_image(_MemFile(view, peb))
    for img in image.images:
        for name, volume in img.volumes.items():
            blocks = volume.get_blocks(image.blocks)
            if not blocks:
                continue
            with _quiet(ctx, offset):
                content = b"".join(leb_virtual_file(image, blocks).reader())
            ctx.budget.charge(len(content))
            blobs.append(Blob(f"vol:{name}", memoryview(content)))
    return blobs
