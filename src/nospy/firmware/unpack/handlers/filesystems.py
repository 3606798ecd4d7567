"""Flash and disk filesystems: jffs2 (both byte orders), ext2/3/4, cramfs and romfs.

References:
- jffs2: the kernel's ``include/uapi/linux/jffs2.h`` (node headers) and ``fs/jffs2/readinode.c``;
  read by ``dissect.jffs`` (little-endian). A big-endian image is first rewritten to little-endian
  in memory, header by header (the payloads are byte-order free), then read the same way.
- ext2/3/4: the kernel's ``Documentation/filesystems/ext4/`` (superblock at 1024, magic 0xEF53 at
  offset 56 of it); read by ``dissect.extfs``.
- cramfs: the kernel's ``include/uapi/linux/cramfs_fs.h``; read by ``dissect.cramfs`` (little-endian
  only). A big-endian image (``mkfs.cramfs -N big``) is first rewritten to little-endian in memory, as
  util-linux's own ``fsck.cramfs`` does (``cramfs_common.c``): superblock words, inodes (bit fields
  allocated from the other end of each word) and block pointers; the zlib blocks are byte-order free.
- romfs: the kernel's ``Documentation/filesystems/romfs.rst`` (big-endian, 16-byte aligned headers).

Limitations: jffs2 rtime/rubin-compressed nodes and CRCs are not checked or read (dissect.jffs);
cramfs with a 512-byte boot pad (``-p``) or
direct block pointers is not read; ext4 files with inline data or encryption may read empty.
"""

from __future__ import annotations

import re
import stat
from typing import Any, BinaryIO, ClassVar, Literal

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack.base import (
    Chunk,
    Context,
    Filesystem,
    FormatError,
    Handler,
    Node,
    Structs,
    ViewIO,
    mode_type,
)

__all__ = ["Cramfs", "Ext", "Jffs2", "Romfs"]


_MAX_LINK = 4096  # PATH_MAX: no symlink target is longer


def _link(inode: object, kind: EntryType, size: int) -> str | None:
    """A symlink's target, refused when its inode claims more than a path can hold: dissect reads the
    target whole, and a hostile size (jffs2, ext) would make it gigabytes of zeros."""
    if kind is not EntryType.SYMLINK:
        return None
    if size > _MAX_LINK:
        raise FormatError(f"symlink target of {size} bytes, longer than a path can be")
    return str(inode.link)  # type: ignore[attr-defined]


class _InodeFs(Filesystem):
    """The shape dissect's filesystems share: a root inode, ``iterdir()``, ``open()``."""

    def __init__(self, root: object) -> None:
        self._root = root

    def node(self, inode: object) -> Node:
        # jffs2 and cramfs inodes carry mode, uid, gid, size and link themselves; ext overrides this
        mode: int = inode.mode  # type: ignore[attr-defined]
        kind = mode_type(mode)
        size = inode.size if kind in {EntryType.FILE, EntryType.SYMLINK} else 0  # type: ignore[attr-defined]
        return Node(kind, stat.S_IMODE(mode), inode.uid, inode.gid, size, _link(inode, kind, size))  # type: ignore[attr-defined]

    def name(self, inode: object) -> str:
        return str(inode.name)  # type: ignore[attr-defined]

    def root(self) -> tuple[Node, object]:
        return self.node(self._root), self._root

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        return [(self.name(child), self.node(child), child) for child in ref.iterdir()]  # type: ignore[attr-defined]

    def open_file(self, ref: object) -> BinaryIO:
        return ref.open()  # type: ignore[attr-defined,no-any-return]


# --- jffs2 -------------------------------------------------------------------------------------

_JFFS2_DEFS = """
struct unknown_node { uint16 magic; uint16 nodetype; uint32 totlen; uint32 hdr_crc; };
struct raw_dirent {
    uint16 magic; uint16 nodetype; uint32 totlen; uint32 hdr_crc;
    uint32 pino; uint32 version; uint32 ino; uint32 mctime;
    uint8 nsize; uint8 type; uint8 unused[2]; uint32 node_crc; uint32 name_crc;
};
struct raw_inode {
    uint16 magic; uint16 nodetype; uint32 totlen; uint32 hdr_crc;
    uint32 ino; uint32 version; uint32 mode; uint16 uid; uint16 gid; uint32 isize;
    uint32 atime; uint32 mtime; uint32 ctime; uint32 offset; uint32 csize; uint32 dsize;
    uint8 compr; uint8 usercompr; uint16 flags; uint32 data_crc; uint32 node_crc;
};
"""
_J_LE = Structs("<", _JFFS2_DEFS)
_J_BE = Structs(">", _JFFS2_DEFS)
_JFFS2_MAGIC = 0x1985
_DIRENT, _INODE = 0xE001, 0xE002
_NODE_LE = re.compile(rb"\x85\x19[\x01-\x09][\x20\xe0]")
_NODE_BE = re.compile(rb"\x19\x85[\x20\xe0][\x01-\x09]")
_MAX_NODE = 1 << 20  # a node holds at most one page of data plus its header
_MAX_GAP = 1 << 18  # erased space between nodes: at most one erase block


def _swap(struct_be: Any, struct_le: Any, raw: bytes) -> bytes:
    """A node header read big-endian and written back little-endian, field by field."""
    be = struct_be(raw)
    fields = {f: getattr(be, f) for f in struct_be.fields}
    return bytes(struct_le(**fields).dumps())


def _jffs2_extent(data: memoryview, offset: int, big: bool) -> tuple[int, list[tuple[int, int, int]]]:
    """The end of the jffs2 at ``offset`` and its nodes (position, type, length)."""
    node_re = _NODE_BE if big else _NODE_LE
    order: Literal["big", "little"] = "big" if big else "little"
    nodes = []
    pos = offset
    while pos + 12 <= len(data):
        if node_re.match(data, pos):
            nodetype = int.from_bytes(data[pos + 2 : pos + 4], order)
            totlen = int.from_bytes(data[pos + 4 : pos + 8], order)
            if not 12 <= totlen <= _MAX_NODE or pos + totlen > len(data):
                break
            nodes.append((pos, nodetype, totlen))
            pos += (totlen + 3) & ~3
            continue
        nxt = node_re.search(data, pos, min(len(data), pos + _MAX_GAP))
        gap = bytes(data[pos : nxt.start() if nxt else min(len(data), pos + _MAX_GAP)])
        if nxt is None or (gap.strip(b"\xff") and gap.strip(b"\x00")):
            break  # not erased space: the filesystem ended
        pos = nxt.start()
    return pos, nodes


class Jffs2(Handler):
    NAME = "jffs2"
    PATTERNS = (_NODE_LE.pattern, _NODE_BE.pattern)
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        big = bytes(data[offset : offset + 2]) == b"\x19\x85"
        end, nodes = _jffs2_extent(data, offset, big)
        if not any(t in {_DIRENT, _INODE} for _, t, _ in nodes):
            return None
        view = data[offset:end]
        if big:
            out = bytearray(view)
            for pos, nodetype, _ in nodes:
                rel = pos - offset
                kind = {_DIRENT: "raw_dirent", _INODE: "raw_inode"}.get(nodetype, "unknown_node")
                size = len(getattr(_J_LE, kind))
                out[rel : rel + size] = _swap(getattr(_J_BE, kind), getattr(_J_LE, kind), bytes(out[rel : rel + size]))
            ctx.budget.charge(len(out))
            view = memoryview(bytes(out))
        from dissect.jffs import JFFS2  # noqa: PLC0415 - loaded when an image holds one (see Structs)

        fs = JFFS2(ViewIO(view))
        return Chunk(offset, end, filesystem=_Jffs2Fs(fs.root), label="jffs2-be" if big else "jffs2")


class _Jffs2Fs(_InodeFs):
    def key(self, ref: object) -> object:
        return ref.inum  # type: ignore[attr-defined]

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        return [(name, self.node(child), child) for name, child in ref.iterdir()]  # type: ignore[attr-defined]


# --- ext2/3/4 ----------------------------------------------------------------------------------

_EXT_SB = 1024


class _ExtFs(_InodeFs):
    def node(self, inode: object) -> Node:
        raw = inode.inode  # type: ignore[attr-defined]
        mode: int = raw.i_mode
        kind = mode_type(mode)
        size = inode.size if kind in {EntryType.FILE, EntryType.SYMLINK} else 0  # type: ignore[attr-defined]
        return Node(kind, stat.S_IMODE(mode), raw.i_uid, raw.i_gid, size, _link(inode, kind, size))

    def name(self, inode: object) -> str:
        return str(inode.filename)  # type: ignore[attr-defined]

    def key(self, ref: object) -> object:
        return ref.inum  # type: ignore[attr-defined]

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        return [
            (self.name(c), self.node(c), c)
            for c in ref.iterdir()  # type: ignore[attr-defined]
            if c.filename not in {".", ".."}
        ]


class Ext(Handler):
    NAME = "ext"
    # s_magic, then s_state (0-3; genext2fs writes 0) and s_errors (0-3)
    PATTERNS = (rb"\x53\xef[\x00-\x03]\x00[\x00-\x03]\x00",)
    OFFSET = _EXT_SB + 56
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        sb = bytes(data[offset + _EXT_SB : offset + _EXT_SB + 32])
        blocks = int.from_bytes(sb[4:8], "little")
        log_block = int.from_bytes(sb[24:28], "little")
        if log_block > 6 or blocks == 0:
            return None
        end = offset + blocks * (1024 << log_block)
        if end > len(data):
            raise FormatError(f"truncated: {end - offset} bytes declared, {len(data) - offset} present")
        from dissect.extfs import ExtFS  # noqa: PLC0415 - loaded when an image holds one (see Structs)

        fs = ExtFS(ViewIO(data[offset:end]))
        return Chunk(
            offset, end, filesystem=_ExtFs(fs.root), label={2: "ext2", 3: "ext3", 4: "ext4"}.get(fs.type, "ext")
        )


# --- cramfs ------------------------------------------------------------------------------------


class _CramFs(_InodeFs):
    def key(self, ref: object) -> object:
        return ref.offset  # type: ignore[attr-defined]

    def name(self, inode: object) -> str:
        return bytes(inode.inode.name).rstrip(b"\0").decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        # dissect.cramfs walks a directory by the file position its inode reads leave behind: read
        # every child's inode before anything else moves it (a symlink target, a subdirectory)
        children = []
        for child in ref.iterdir():  # type: ignore[attr-defined]
            _ = child.inode
            children.append(child)
        return [(self.name(c), self.node(c), c) for c in children]


_CRAMFS_SB = 64  # superblock up to the root inode
_CRAMFS_BLOCK = 4096  # dissect.cramfs reads 4 KiB blocks, mkfs.cramfs's default on 4 KiB-page hosts
_CRAMFS_MAX_INODES = 1 << 20


def _cramfs_inode_le(raw: bytes) -> tuple[bytes, int, int, int, int]:
    """A big-endian cramfs inode's 12 bytes in little-endian layout, and its mode, size, name length, offset.

    cramfs_fs.h declares the inode as C bit fields; a big-endian compiler allocates them from the most
    significant bit of each 32-bit word, a little-endian one from the least significant.
    """
    w0, w1, w2 = (int.from_bytes(raw[i : i + 4], "big") for i in (0, 4, 8))
    mode, uid = w0 >> 16, w0 & 0xFFFF
    size, gid = w1 >> 8, w1 & 0xFF
    namelen, off = w2 >> 26, w2 & 0x3FFFFFF
    le = (mode | uid << 16).to_bytes(4, "little") + (size | gid << 24).to_bytes(4, "little")
    return le + (namelen | off << 6).to_bytes(4, "little"), mode, size, namelen, off << 2


def _cramfs_to_le(view: memoryview, ctx: Context) -> bytes:
    """A big-endian cramfs rewritten little-endian, so dissect.cramfs reads it (see the module docstring).

    Parts a hostile image points outside of itself are left as they are: the reader reports them.
    """
    out = bytearray(view)
    ctx.budget.charge(len(out))
    for i in range(0, 16, 4):  # magic, size, flags, future
        out[i : i + 4] = out[i : i + 4][::-1]
    for i in range(32, 48, 4):  # fsid: crc, edition, blocks, files
        out[i : i + 4] = out[i : i + 4][::-1]
    todo = [_CRAMFS_SB]
    seen: set[int] = set()
    visits = len(out) // 12  # no more directory entries than that fit: more means overlapping directories
    while todo and len(seen) < _CRAMFS_MAX_INODES:
        pos = todo.pop()
        if pos in seen or pos + 12 > len(out):
            continue
        seen.add(pos)
        le, mode, size, _, data = _cramfs_inode_le(bytes(view[pos : pos + 12]))
        out[pos : pos + 12] = le
        if stat.S_ISDIR(mode) and size:
            # the directory's entries, one after another: each an inode and its padded name
            entry, end = data, min(data + size, len(out))
            while entry + 12 <= end and entry not in seen and visits > 0:
                visits -= 1
                todo.append(entry)
                entry += 12 + (int.from_bytes(view[entry + 8 : entry + 12], "big") >> 26) * 4
        elif (stat.S_ISREG(mode) or stat.S_ISLNK(mode)) and size:
            ctx.budget.check_time()
            blocks = min((size + _CRAMFS_BLOCK - 1) // _CRAMFS_BLOCK, (len(out) - data) // 4)
            words = out[data : data + 4 * blocks]
            for i in range(0, len(words), 4):
                out[data + i : data + i + 4] = words[i : i + 4][::-1]
    return bytes(out)


class Cramfs(Handler):
    NAME = "cramfs"
    PATTERNS = (rb"\x45\x3d\xcd\x28.{12}Compressed ROMFS", rb"\x28\xcd\x3d\x45.{12}Compressed ROMFS")
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        big = bytes(data[offset : offset + 4]) == b"\x28\xcd\x3d\x45"
        size = int.from_bytes(data[offset + 4 : offset + 8], "big" if big else "little")
        end = offset + size
        if size < 76 or end > len(data):
            raise FormatError(f"bad or truncated size {size}")
        view = data[offset:end]
        from dissect.cramfs import CramFS  # noqa: PLC0415 - loaded when an image holds one (see Structs)

        fs = CramFS(ViewIO(memoryview(_cramfs_to_le(view, ctx)) if big else view))
        return Chunk(offset, end, filesystem=_CramFs(fs.root), label="cramfs-be" if big else None)


# --- romfs -------------------------------------------------------------------------------------

_ROMFS = Structs(
    ">",
    """
struct romfs_super { char magic[8]; uint32 full_size; uint32 checksum; };
struct romfs_inode { uint32 next; uint32 spec; uint32 size; uint32 checksum; };
""",
)
# romfs.rst: the low 3 bits of ``next`` are the type, bit 3 the executable flag
_ROMFS_TYPES = {
    0: EntryType.FILE,  # hard link: resolved to its target below
    1: EntryType.DIR,
    2: EntryType.FILE,
    3: EntryType.SYMLINK,
    4: EntryType.BLOCKDEV,
    5: EntryType.CHARDEV,
    6: EntryType.SOCKET,
    7: EntryType.FIFO,
}
_ROMFS_MAX_ENTRIES = 1 << 20


def _romfs_name(view: memoryview, pos: int) -> tuple[str, int]:
    """The NUL-ended name at ``pos`` and where the data after it starts (16-byte aligned)."""
    raw = bytes(view[pos : pos + 4096])
    nul = raw.find(b"\0")
    if nul < 0:
        raise FormatError(f"romfs: unterminated name at {pos:#x}")
    return raw[:nul].decode("utf-8", "surrogateescape"), pos + ((nul + 16) & ~15)


class _RomFs(Filesystem):
    def __init__(self, view: memoryview, first: int) -> None:
        self.view = view
        self.first = first

    def _header(self, pos: int) -> tuple[object, str, int]:
        raw = bytes(self.view[pos : pos + 16])
        if len(raw) < 16:
            raise FormatError(f"romfs: header at {pos:#x} past the end")
        hdr = _ROMFS.romfs_inode(raw)
        name, data = _romfs_name(self.view, pos + 16)
        return hdr, name, data

    def root(self) -> tuple[Node, object]:
        return Node(EntryType.DIR, 0o755, 0, 0, 0), self.first

    def key(self, ref: object) -> object:
        return ref

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        assert isinstance(ref, int)  # noqa: S101 - directory handles are header offsets
        out: list[tuple[str, Node, object]] = []
        pos = ref
        seen: set[int] = set()
        while pos and pos not in seen and len(seen) < _ROMFS_MAX_ENTRIES:
            seen.add(pos)
            hdr, name, data = self._header(pos)
            nxt: int = hdr.next  # type: ignore[attr-defined]
            kind_id, executable = nxt & 7, nxt & 8
            target = pos
            if kind_id == 0:  # hard link: spec is the target's header
                target = hdr.spec  # type: ignore[attr-defined]
                thdr, _, data = self._header(target)
                kind_id, executable, hdr = thdr.next & 7, thdr.next & 8, thdr  # type: ignore[attr-defined]
            kind = _ROMFS_TYPES[kind_id]
            size: int = hdr.size if kind in {EntryType.FILE, EntryType.SYMLINK} else 0  # type: ignore[attr-defined]
            mode = (0o755 if executable or kind is EntryType.DIR else 0o644) if kind is not EntryType.SYMLINK else 0o777
            link = (
                bytes(self.view[data : data + size]).decode("utf-8", "surrogateescape")
                if kind is EntryType.SYMLINK
                else None
            )
            if name not in {".", ".."}:
                handle: object = hdr.spec if kind is EntryType.DIR else (data, size)  # type: ignore[attr-defined]
                out.append((name, Node(kind, mode, 0, 0, size, link), handle))
            pos = nxt & ~15
        return out

    def open_file(self, ref: object) -> BinaryIO:
        assert isinstance(ref, tuple)  # noqa: S101 - file handles are (data offset, size)
        start, size = ref
        if start + size > len(self.view):
            raise FormatError("romfs: file data past the end")
        return ViewIO.stream(self.view[start : start + size])


class Romfs(Handler):
    NAME = "romfs"
    PATTERNS = (rb"-rom1fs-",)
    DOC = __doc__ or ""
    FILESYSTEM = True
    _MIN: ClassVar[int] = 32

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        sb = _ROMFS.romfs_super(bytes(data[offset : offset + 16]))
        end = offset + sb.full_size
        head = bytes(data[offset : offset + min(512, sb.full_size)])
        # romfs.rst: the 32-bit big-endian words of the first 512 bytes (or the whole image) sum to 0
        if (
            sb.full_size < self._MIN
            or sum(int.from_bytes(head[i : i + 4], "big") for i in range(0, len(head) & ~3, 4)) & 0xFFFFFFFF
        ):
            return None
        if end > len(data):
            raise FormatError(f"truncated: {sb.full_size} bytes declared, {len(data) - offset} present")
        view = data[offset:end]
        _, first = _romfs_name(view, 16)
        # the first header is the root's "." entry: its spec points at the root directory's first entry
        return Chunk(offset, end, filesystem=_RomFs(view, first))
