"""squashfs 2.x and 3.x, little- and big-endian, read in process, with zlib or a vendor LZMA.

References: squashfs-tools' ``squashfs_compat.h`` (the 2.x and 3.x on-disk layouts, and the
``SQUASHFS_SWAP`` macros that say where each bit field sits in an image of the other byte order),
``unsquash-2.c``/``unsquash-3.c`` and ``unsquashfs.c`` (``read_super``: 2.x takes its table positions
from the 32-bit superblock fields, 3.x from the 64-bit ones).

Bit fields are read as squashfs-tools reads them: a header is one integer in the image's byte order;
a little-endian image allocates fields from its lowest bit, a big-endian one from its highest.

Compression: a block that starts with a zlib header is zlib (the format's own); any other is LZMA in
one of the framings `VendorLzma` knows. The LZMA patches of the Broadcom, Realtek and Atheros SDKs
(sqlzma and its kin) keep the 3.x layout and change only the block codec, and sqlzma mixes zlib and
LZMA blocks in one image: each block is decoded by its own first bytes. Debian's ``unsquashfs``
reads 2.x and 3.x with zlib only. Every decode is capped at the size the format allows (8 KiB for
metadata, the block size for data), so a hostile block cannot expand without bound.

Limitations: squashfs 1.x is still read through ``unsquashfs`` (`squashfs_legacy`); the optional
export (NFS lookup) table and the directory indexes are not needed for a listing and are not read.
"""

from __future__ import annotations

import io
import lzma
import stat
import struct
import threading
import zlib
from collections import OrderedDict
from typing import BinaryIO, NamedTuple

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack.base import Chunk, Context, Filesystem, FormatError, Node, mode_type
from nospy.firmware.unpack.handlers.squashfs import VendorLzma, decode_to_end

_METADATA = 8192  # SQUASHFS_METADATA_SIZE
_META_UNCOMPRESSED = 1 << 15  # SQUASHFS_COMPRESSED_BIT: the metadata block is stored as is
_DATA_UNCOMPRESSED = 1 << 24  # SQUASHFS_COMPRESSED_BIT_BLOCK
_NO_FRAGMENT = 0xFFFFFFFF  # SQUASHFS_INVALID_FRAG
_GUID_IS_UID = 255  # SQUASHFS_GUIDS: the group is the owner's id
_CHECK = 1 << 2  # SQUASHFS_CHECK: a marker byte follows each metadata block's length
_SB_FORMAT = "IIIIIIIHHHHBBBIQIIIqqqqqqq"  # squashfs_super_block_3, packed; the byte order is prefixed
_SB_SIZE = struct.calcsize("<" + _SB_FORMAT)  # 119
_SB2_SIZE = 63  # the 2.x superblock: up to fragment_table_start_2
_MAX_BLOCK = 1 << 20
_MAX_ENTRIES = 1 << 20  # entries listed in one filesystem (a root filesystem has tens of thousands)
_KEPT_BYTES = 16 << 20  # decoded data and fragment blocks kept

# bit-field widths, in squashfs_compat.h's order; names as there
_BASE3 = ("inode_type", 4), ("mode", 12), ("uid", 8), ("guid", 8), ("mtime", 32), ("inode_number", 32)
_BASE2 = ("inode_type", 4), ("mode", 12), ("uid", 8), ("guid", 8)
_INODES3: dict[int, tuple[tuple[str, int], ...]] = {
    1: (*_BASE3, ("nlink", 32), ("file_size", 19), ("offset", 13), ("start_block", 32), ("parent", 32)),
    2: (*_BASE3, ("start_block", 64), ("fragment", 32), ("frag_offset", 32), ("file_size", 32)),
    3: (*_BASE3, ("nlink", 32), ("symlink_size", 16)),
    4: (*_BASE3, ("nlink", 32), ("rdev", 16)),
    5: (*_BASE3, ("nlink", 32), ("rdev", 16)),
    6: (*_BASE3, ("nlink", 32)),
    7: (*_BASE3, ("nlink", 32)),
    8: (
        *_BASE3,
        ("nlink", 32),
        ("file_size", 27),
        ("offset", 13),
        ("start_block", 32),
        ("i_count", 16),
        ("parent", 32),
    ),
    9: (*_BASE3, ("nlink", 32), ("start_block", 64), ("fragment", 32), ("frag_offset", 32), ("file_size", 64)),
}
_INODES2: dict[int, tuple[tuple[str, int], ...]] = {
    1: (*_BASE2, ("file_size", 19), ("offset", 13), ("mtime", 32), ("start_block", 24)),
    2: (*_BASE2, ("mtime", 32), ("start_block", 32), ("fragment", 32), ("frag_offset", 32), ("file_size", 32)),
    3: (*_BASE2, ("symlink_size", 16)),
    4: (*_BASE2, ("rdev", 16)),
    5: (*_BASE2, ("rdev", 16)),
    6: _BASE2,
    7: _BASE2,
    8: (*_BASE2, ("file_size", 27), ("offset", 13), ("mtime", 32), ("start_block", 24), ("i_count", 16)),
}
_DIR_HEADER3 = ("count", 8), ("start_block", 32), ("inode_number", 32)
_DIR_HEADER2 = ("count", 8), ("start_block", 24)
_DIR_ENTRY3 = ("offset", 13), ("type", 3), ("size", 8), ("inode_number", 16)
_DIR_ENTRY2 = ("offset", 13), ("type", 3), ("size", 8)
_TYPES = {
    1: stat.S_IFDIR,
    2: stat.S_IFREG,
    3: stat.S_IFLNK,
    4: stat.S_IFBLK,
    5: stat.S_IFCHR,
    6: stat.S_IFIFO,
    7: stat.S_IFSOCK,
    8: stat.S_IFDIR,
    9: stat.S_IFREG,
}


def _bits(raw: bytes, big: bool, layout: tuple[tuple[str, int], ...]) -> dict[str, int]:
    """The bit fields of a packed header, as squashfs-tools' ``SQUASHFS_SWAP`` places them."""
    value = int.from_bytes(raw, "big" if big else "little")
    total = len(raw) * 8
    out: dict[str, int] = {}
    pos = 0
    for name, width in layout:
        shift = total - pos - width if big else pos
        out[name] = (value >> shift) & ((1 << width) - 1)
        pos += width
    return out


def _size(layout: tuple[tuple[str, int], ...]) -> int:
    return sum(width for _, width in layout) // 8


class _Super(NamedTuple):
    """squashfs_super_block_3 (``squashfs_compat.h``); 2.x uses its 32-bit ``_2`` positions."""

    s_magic: int
    inodes: int
    bytes_used_2: int
    uid_start_2: int
    guid_start_2: int
    inode_table_start_2: int
    directory_table_start_2: int
    s_major: int
    s_minor: int
    block_size_1: int
    block_log: int
    flags: int
    no_uids: int
    no_guids: int
    mkfs_time: int
    root_inode: int
    block_size: int
    fragments: int
    fragment_table_start_2: int
    bytes_used: int
    uid_start: int
    guid_start: int
    inode_table_start: int
    directory_table_start: int
    fragment_table_start: int
    lookup_table_start: int


class _Inode(NamedTuple):
    ref: tuple[int, int]  # (metadata block, offset) in the inode table: the walk's loop key
    fields: dict[str, int]
    node: Node
    blocks_at: tuple[int, int]  # where a file's block list starts in the inode table


class _Squashfs3(Filesystem):
    def __init__(self, view: memoryview, sb: _Super, big: bool, ctx: Context) -> None:
        self.view = view
        self.major = major = sb.s_major
        self.big = big
        self.ctx = ctx
        self.order = ">" if big else "<"
        self.sb = sb
        self.block_size = sb.block_size  # 2.x and 3.x alike (1.x has only the 16-bit block_size_1)
        if not 4096 <= self.block_size <= _MAX_BLOCK or self.block_size != 1 << sb.block_log:
            raise FormatError(f"squashfs {major}.x: block size {self.block_size} and its log {sb.block_log} disagree")
        if major == 3:
            self.inode_table, self.dir_table = sb.inode_table_start, sb.directory_table_start
            self.fragment_table, uid_start = sb.fragment_table_start, sb.uid_start
        else:
            self.inode_table, self.dir_table = sb.inode_table_start_2, sb.directory_table_start_2
            self.fragment_table, uid_start = sb.fragment_table_start_2, sb.uid_start_2
        self.inodes = _INODES3 if major == 3 else _INODES2
        self.dir_header = _DIR_HEADER3 if major == 3 else _DIR_HEADER2
        self.dir_entry = _DIR_ENTRY3 if major == 3 else _DIR_ENTRY2
        self.check = 1 if sb.flags & _CHECK else 0
        # the group ids follow the owner ids, read in one go from uid_start as the unsquashfs of the
        # 2.x/3.x era did (read_uids_guids_1); mksquashfs points guid_start at the same place
        owners = self._words(uid_start, sb.no_uids + sb.no_guids, 4)
        self.uids, self.guids = owners[: sb.no_uids], owners[sb.no_uids :]
        self.lzma = VendorLzma()
        self._meta: dict[int, tuple[bytes, int]] = {}
        self._fragments: dict[int, tuple[int, int]] = {}
        self._fragment_index: list[int] | None = None
        self._kept: OrderedDict[tuple[int, int], bytes] = OrderedDict()  # (position, size word): decoded
        self._kept_bytes = 0
        self._listed = 0
        self._lock = threading.Lock()  # the listing reads files from several threads

    # -- raw reads --------------------------------------------------------------------------------

    def _raw(self, pos: int, length: int) -> bytes:
        if pos < 0 or pos + length > len(self.view):
            raise FormatError(f"read of {length} bytes at {pos:#x} past the end of the filesystem")
        return bytes(self.view[pos : pos + length])

    def _words(self, pos: int, count: int, width: int) -> list[int]:
        raw = self._raw(pos, count * width)
        kind = {4: "I", 8: "Q"}[width]
        return list(struct.unpack(f"{self.order}{count}{kind}", raw))

    def _decode(self, data: bytes, limit: int, where: int) -> bytes:
        """A compressed block: zlib if it says so in its first two bytes, else a vendor LZMA."""
        if len(data) >= 2 and data[0] & 0x0F == 8 and int.from_bytes(data[:2], "big") % 31 == 0:
            try:
                out = decode_to_end(zlib.decompressobj(), data, limit, f"the zlib block at {where:#x}")
            except zlib.error as exc:
                raise FormatError(f"block at {where:#x}: zlib: {exc}") from exc
        else:
            try:
                out = self.lzma.decompress(data, limit)
            except lzma.LZMAError as exc:
                raise FormatError(f"block at {where:#x}: LZMA: {exc}") from exc
        if not out:
            raise FormatError(f"block at {where:#x} decodes to nothing")
        return out

    def _metadata_block(self, pos: int) -> tuple[bytes, int]:
        """The metadata block at ``pos`` (absolute) decoded, and where the next one starts."""
        got = self._meta.get(pos)
        if got is None:
            word = int.from_bytes(self._raw(pos, 2), "big" if self.big else "little")
            length = word & ~_META_UNCOMPRESSED or _META_UNCOMPRESSED  # SQUASHFS_COMPRESSED_SIZE
            start = pos + 2 + self.check
            data = self._raw(start, length)
            if not word & _META_UNCOMPRESSED:
                data = self._decode(data, _METADATA, pos)
            got = (data[:_METADATA], start + length)
            if len(self._meta) < 1 << 14:  # 128 MiB of metadata at most, far more than any real image
                self._meta[pos] = got
        return got

    def _metadata(self, table: int, block: int, offset: int, length: int) -> tuple[int, int, bytes]:
        """``length`` bytes of a metadata table from (``block``, ``offset``), across blocks; and where
        the read ended, as (block, offset). ``block`` is relative to ``table``."""
        out = []
        while length > 0:
            data, following = self._metadata_block(table + block)
            if offset == len(data):  # the last read ended with this block: this one starts the next
                block, offset = following - table, 0
                continue
            if offset > len(data):
                raise FormatError(f"metadata offset {offset} past its block at {table + block:#x}")
            piece = data[offset : offset + length]
            out.append(piece)
            length -= len(piece)
            offset += len(piece)
        return block, offset, b"".join(out)

    # -- inodes and directories -------------------------------------------------------------------

    def _inode(self, block: int, offset: int) -> _Inode:
        head = self._metadata(self.inode_table, block, offset, 1)[2]
        kind = (head[0] >> 4) if self.big else (head[0] & 0x0F)
        layout = self.inodes.get(kind)
        if layout is None:
            raise FormatError(f"inode at {block:#x}:{offset}: unknown type {kind}")
        end_block, end_offset, raw = self._metadata(self.inode_table, block, offset, _size(layout))
        f = _bits(raw, self.big, layout)
        mode = _TYPES[kind] | f["mode"]
        uid = self._owner(self.uids, f["uid"])
        gid = uid if f["guid"] == _GUID_IS_UID else self._owner(self.guids, f["guid"])
        entry_type = mode_type(mode)
        size, link = 0, None
        if entry_type is EntryType.FILE:
            size = f["file_size"]
        elif entry_type is EntryType.SYMLINK:
            raw_link = self._metadata(self.inode_table, end_block, end_offset, f["symlink_size"])[2]
            link = raw_link.decode("utf-8", "surrogateescape")
            size = len(raw_link)
        node = Node(entry_type, stat.S_IMODE(mode), uid, gid, size, link)
        return _Inode((block, offset), f, node, (end_block, end_offset))

    @staticmethod
    def _owner(table: list[int], index: int) -> int:
        if index >= len(table):
            raise FormatError(f"owner index {index} past the {len(table)} ids stored")
        return table[index]

    def root(self) -> tuple[Node, object]:
        ref = self.sb.root_inode
        inode = self._inode(ref >> 16, ref & 0xFFFF)
        if inode.node.type is not EntryType.DIR:
            raise FormatError("the root inode is not a directory")
        return inode.node, inode

    def key(self, ref: object) -> object:
        assert isinstance(ref, _Inode)  # noqa: S101 - handles are inodes
        return ref.ref

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        assert isinstance(ref, _Inode)  # noqa: S101 - handles are inodes
        f = ref.fields
        # 3.x counts "." and ".." as 3 bytes of a directory's size; 2.x does not (unsquashfs' opendir_1 and _3)
        remaining = f["file_size"] - (3 if self.major == 3 else 0)
        block, offset = f["start_block"], f["offset"]
        header_size, entry_size = _size(self.dir_header), _size(self.dir_entry)
        out: list[tuple[str, Node, object]] = []
        while remaining > 0:
            self.ctx.budget.check_time()
            block, offset, raw = self._metadata(self.dir_table, block, offset, header_size)
            header = _bits(raw, self.big, self.dir_header)
            remaining -= header_size
            for _ in range(header["count"] + 1):
                block, offset, raw = self._metadata(self.dir_table, block, offset, entry_size)
                entry = _bits(raw, self.big, self.dir_entry)
                block, offset, name = self._metadata(self.dir_table, block, offset, entry["size"] + 1)
                remaining -= entry_size + len(name)
                child = self._inode(header["start_block"], entry["offset"])
                out.append((name.decode("utf-8", "surrogateescape"), child.node, child))
                self._listed += 1
                if self._listed > _MAX_ENTRIES:  # directories sharing one listing would repeat it each time
                    raise FormatError(f"more than {_MAX_ENTRIES} entries listed in one filesystem")
        return out

    # -- file content -----------------------------------------------------------------------------

    def open_file(self, ref: object) -> BinaryIO:
        assert isinstance(ref, _Inode)  # noqa: S101 - handles are inodes
        f = ref.fields
        size, fragment = f["file_size"], f["fragment"]
        full, tail = divmod(size, self.block_size)
        if fragment == _NO_FRAGMENT and tail:
            full, tail = full + 1, 0
        if size > self.ctx.budget.limits.max_bytes:
            # a sparse file can claim terabytes in a few bytes: its block list is not built (a file above
            # the limit is not read whole anyway, and this error stays with the file, not the image)
            raise FormatError(f"a file of {size} bytes is above the unpacked-bytes limit")
        raw = self._metadata(self.inode_table, *ref.blocks_at, 4 * full)[2]
        words = struct.unpack(f"{self.order}{full}I", raw)
        raw_io = _FileIO(self, f["start_block"], words, size, (fragment, f["frag_offset"], tail))
        return io.BufferedReader(raw_io, buffer_size=self.block_size)

    def data_block(self, pos: int, word: int, expected: int | None) -> bytes:
        """The data block at ``pos`` decoded: its first ``expected`` bytes, or all of a fragment block (``None``).

        The blocks decoded last are kept (`_KEPT_BYTES`): the tails of neighbouring files share fragment
        blocks, and the listing reads each file twice, its first bytes and then its hash.
        """
        length = word & ~_DATA_UNCOMPRESSED
        if not length:  # a sparse block
            return bytes(expected or 0)
        with self._lock:
            data = self._kept.get((pos, word))
            if data is not None:
                self._kept.move_to_end((pos, word))
        if data is None:
            data = self._raw(pos, length)
            if not word & _DATA_UNCOMPRESSED:
                data = self._decode(data, self.block_size, pos)
            data = data[: self.block_size]
            with self._lock:  # two threads that miss the same block both decode it; one copy is kept
                if (pos, word) not in self._kept:
                    self._kept[pos, word] = data
                    self._kept_bytes += len(data)
                while self._kept_bytes > _KEPT_BYTES:
                    self._kept_bytes -= len(self._kept.popitem(last=False)[1])
        if expected is None:
            return data
        if len(data) < expected:
            raise FormatError(f"data block at {pos:#x} holds {len(data)} bytes, {expected} expected")
        return data[:expected]

    def fragment_block(self, index: int) -> bytes:
        start, word = self.fragment(index)
        return self.data_block(start, word, None)

    def fragment(self, index: int) -> tuple[int, int]:
        """(start, size word) of fragment block ``index``."""
        got = self._fragments.get(index)
        if got is not None:
            return got
        entry_size, word = (16, 8) if self.major == 3 else (8, 4)
        if index >= self.sb.fragments:
            raise FormatError(f"fragment {index} past the {self.sb.fragments} stored")
        if self._fragment_index is None:
            blocks = -(-self.sb.fragments * entry_size // _METADATA)
            self._fragment_index = self._words(self.fragment_table, blocks, word)
        at = index * entry_size
        pointer = self._fragment_index[at // _METADATA]
        raw = self._metadata(0, pointer, at % _METADATA, entry_size)[2]
        kind = "QI" if self.major == 3 else "II"
        got = struct.unpack(self.order + kind, raw[: struct.calcsize(kind)])
        self._fragments[index] = (got[0], got[1])
        return got[0], got[1]


class _FileIO(io.RawIOBase):
    """A regular file's content, decoded one block at a time as it is read."""

    def __init__(
        self, fs: _Squashfs3, start: int, words: tuple[int, ...], size: int, tail: tuple[int, int, int]
    ) -> None:
        super().__init__()
        self.fs = fs
        self.size = size
        self.words = words
        self.tail = tail
        self.starts: list[int] = []
        for word in words:
            self.starts.append(start)
            start += word & ~_DATA_UNCOMPRESSED
        self.pos = 0
        self.cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def _block(self, index: int) -> bytes:
        if self.cached is not None and self.cached[0] == index:
            return self.cached[1]
        fs = self.fs
        bs = fs.block_size
        fs.ctx.budget.check_time()
        if index < len(self.words):
            data = fs.data_block(self.starts[index], self.words[index], min(bs, self.size - index * bs))
        else:
            fragment, offset, length = self.tail
            data = fs.fragment_block(fragment)[offset : offset + length]
            if len(data) != length:
                raise FormatError(f"fragment {fragment} holds no {length} bytes at {offset}")
        self.cached = (index, data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        if self.pos >= self.size or not len(out):
            return 0
        index, within = divmod(self.pos, self.fs.block_size)
        piece = self._block(index)[within : within + len(out)]
        out[: len(piece)] = piece
        self.pos += len(piece)
        return len(piece)


def open_v3(data: memoryview, offset: int, ctx: Context, major: int, big: bool) -> Chunk:
    """The squashfs 2.x or 3.x filesystem at ``offset``."""
    head = bytes(data[offset : offset + _SB_SIZE])
    sb_size = _SB_SIZE if major == 3 else _SB2_SIZE
    if len(head) < sb_size:
        raise FormatError("superblock truncated")
    # a 2.x superblock ends before the 3.x one's 64-bit fields, which 2.x never reads
    sb = _Super(*struct.unpack(("<", ">")[big] + _SB_FORMAT, head.ljust(_SB_SIZE, b"\0")))
    size = sb.bytes_used if major == 3 else sb.bytes_used_2
    if size < sb_size:
        raise FormatError(f"squashfs {major}.x: {size} bytes used is less than its superblock")
    end = offset + size
    if end > len(data):
        raise FormatError(f"truncated: {size} bytes used, {len(data) - offset} present")
    fs = _Squashfs3(data[offset:end], sb, big, ctx)
    return Chunk(offset, end, filesystem=fs, label=f"squashfs{major}")
