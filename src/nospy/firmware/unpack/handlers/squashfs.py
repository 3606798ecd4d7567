"""squashfs 4.0, including the vendor variants with their own magic and their own LZMA framing.

References: the kernel's ``Documentation/filesystems/squashfs.rst`` and ``fs/squashfs/squashfs_fs.h``;
https://dr-emann.github.io/squashfs/ ; the LZMA SDK's ``lzma.txt`` (LZMA-alone header: one properties
byte, a 32-bit dictionary size, a 64-bit size). Reading is done by ``dissect.squashfs``.

Vendor variants handled: the magics ``shsq``/``hsqt``/``qshs`` used by Realtek, Broadcom and TP-Link
SDKs, and LZMA blocks with the 13-byte LZMA-alone header, with only the 5-byte properties header
(no size, as in the TRENDnet/Atheros trees), or with no header at all (fixed lc=3, lp=0, pb=2).

Limitations: squashfs 2.x and 3.x (and 4.0 big-endian) are listed through Debian's ``unsquashfs``
(see `squashfs_legacy`); LZMA-compressed 3.x trees of old Broadcom SDKs are not read.
"""

from __future__ import annotations

import hashlib
import lzma
import stat
import struct
from typing import Any, BinaryIO, ClassVar

from dissect.cstruct import cstruct
from dissect.squashfs import SquashFS
from dissect.squashfs.squashfs import FileStream

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack.base import Chunk, Context, Filesystem, FormatError, Handler, Node, ViewIO, mode_type
from nospy.firmware.unpack.limits import Budget

_DEFS = """
struct super_block {
    char     s_magic[4];
    uint32   inodes;
    uint32   mkfs_time;
    uint32   block_size;
    uint32   fragments;
    uint16   compression;
    uint16   block_log;
    uint16   flags;
    uint16   no_ids;
    uint16   s_major;
    uint16   s_minor;
    uint64   root_inode;
    uint64   bytes_used;
    uint64   id_table_start;
    uint64   xattr_id_table_start;
    uint64   inode_table_start;
    uint64   directory_table_start;
    uint64   fragment_table_start;
    uint64   lookup_table_start;
};
"""
_LE = cstruct(endian="<").load(_DEFS)
_BE = cstruct(endian=">").load(_DEFS)
_LE_MAGICS = (b"hsqs", b"shsq", b"hsqt")
_BE_MAGICS = (b"sqsh", b"qshs", b"tqsh")
_LZMA_ID = 2
_UNCOMPRESSED = 1 << 24  # SQUASHFS_COMPRESSED_BIT_BLOCK: the block is stored as is
_XZ_ID = 4
_KEY_FORMAT = b"squashfs4 storage key 1"  # changes when what a key covers changes


class _StrictIO(ViewIO):
    """Reads at or past the end raise: a hostile table pointer must not make the reader spin on empty reads."""

    def __init__(self, view: memoryview, budget: Budget, magic_fix: bool) -> None:
        super().__init__(view)
        self._budget = budget
        self._fix = magic_fix

    def read(self, size: int | None = -1) -> bytes:
        if size and self.tell() >= len(self._view):
            raise FormatError(f"read at {self.tell():#x} past the end of the filesystem")
        self._budget.check_time()
        start = self.tell()
        data = super().read(size)
        if self._fix and start < 4:
            # Vendor magic on a standard layout: show the reader the standard one.
            data = (b"hsqs"[start:] + data[4 - start :])[: len(data)]
        return data


class _VendorLzma:
    """squashfs "LZMA" blocks in any of the framings vendors use; the first that decodes is kept."""

    def __init__(self) -> None:
        self._way: int | None = None

    @staticmethod
    def _raw(data: bytes, props: int, dict_size: int, expected: int) -> bytes:
        lc, rest = props % 9, props // 9
        lp, pb = rest % 5, rest // 5
        filters = [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": max(dict_size, 4096)}]
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters)
        return dec.decompress(data, max_length=expected)

    def _try(self, way: int, data: bytes, expected: int) -> bytes:
        if way == 0:
            return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, max_length=expected)
        if way == 1:
            return self._raw(data[5:], data[0], int.from_bytes(data[1:5], "little"), expected)
        if way == 2:
            return self._raw(data[13:], data[0], int.from_bytes(data[1:5], "little"), expected)
        return self._raw(data, 0x5D, 1 << 23, expected)

    def decompress(self, data: bytes, expected: int) -> bytes:
        if self._way is not None:
            return self._try(self._way, data, expected)
        for way in range(4):
            try:
                out = self._try(way, data, expected)
            except lzma.LZMAError:
                continue
            if out:
                self._way = way
                return out
        raise FormatError("LZMA block in none of the known squashfs framings")


class _FileStream(FileStream):  # type: ignore[misc]
    """dissect's file stream, with the tail-end fragment read once per request.

    dissect.squashfs 1.12 appends the fragment again and again until the aligned read length is used up
    (thousands of copies for a small file read with a 256 KiB alignment); this reads each run once.
    """

    def _read(self, offset: int, length: int) -> bytes:
        result = []
        size: int = self.size
        block_size: int = self.block_size
        run_idx = offset // block_size
        runlist: list[tuple[int | None, int]] = self.runlist
        # data blocks are stored one after another: the first wanted one starts after all before it
        start_block = self.start_block + sum(v & ~_UNCOMPRESSED for v, _ in runlist[:run_idx] if v)
        length = min(length, size - offset)
        while length > 0 and run_idx < len(runlist):
            run_size, run_count = runlist[run_idx]
            pos = offset - run_idx * block_size
            if run_size is None:  # the tail of the file, in a shared fragment block
                data = self.fs._read_fragment(self.fragment, self.fragment_offset, run_count)
            elif run_size == 0:  # a hole
                data = bytes(min(block_size, size - run_idx * block_size))
            else:
                start_block, data = self.fs._read_block(start_block, run_size)
            piece = data[pos : pos + length]
            if not piece:
                break
            result.append(piece)
            offset += len(piece)
            length -= len(piece)
            run_idx += 1
        return b"".join(result)


class _Fs(Filesystem):
    def __init__(self, fs: SquashFS) -> None:
        self.fs = fs
        self._fragments: dict[int, bytes] = {}  # the last few fragment blocks decoded for `storage_key`

    @staticmethod
    def _node(inode: object) -> Node:
        mode: int = inode.mode  # type: ignore[attr-defined]
        kind = mode_type(mode)
        size = inode.size if kind in {EntryType.FILE, EntryType.SYMLINK} else 0  # type: ignore[attr-defined]
        link = inode.link if kind is EntryType.SYMLINK else None  # type: ignore[attr-defined]
        return Node(kind, stat.S_IMODE(mode), inode.uid, inode.gid, size or 0, link)  # type: ignore[attr-defined]

    def root(self) -> tuple[Node, object]:
        return self._node(self.fs.root), self.fs.root

    def key(self, ref: object) -> object:
        return (ref.block, ref.offset)  # type: ignore[attr-defined]

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        return [(child.name, self._node(child), child) for child in ref.iterdir()]  # type: ignore[attr-defined]

    def open_file(self, ref: object) -> BinaryIO:
        return _FileStream(ref)

    def storage_key(self, ref: object) -> str | None:
        """The compression, block size and file size, each data block's size word and stored bytes, and
        the tail's bytes: all a file's content is decoded from.

        The tail is decoded (one fragment block, shared by many files, decoded once): keyed by its
        stored block instead, a program would miss whenever any small file beside its tail changed.
        Vendor LZMA gets no key: the framing it is decoded with is chosen by the first block that decodes.
        """
        if self.fs.sb.compression == _LZMA_ID:
            return None
        inode: Any = ref
        h = hashlib.sha256(_KEY_FORMAT)
        h.update(struct.pack("<HIQ", self.fs.sb.compression, self.fs.block_size, inode.size))
        pos = inode.header.start_block
        for word, count in inode.block_list:
            if word is None:  # the tail, in a fragment block shared with other files
                offset = inode.header.offset
                h.update(self._fragment(inode.header.fragment)[offset : offset + count])
                continue
            h.update(struct.pack("<I", word) + self._stored(pos, word))
            pos += word & ~_UNCOMPRESSED
        return h.hexdigest()

    def _stored(self, pos: int, word: int) -> bytes:
        length = word & ~_UNCOMPRESSED
        self.fs.fh.seek(pos)
        data: bytes = self.fs.fh.read(length) if length else b""
        if len(data) != length:
            raise FormatError(f"block at {pos:#x} truncated")
        return data

    def _fragment(self, index: int) -> bytes:
        if index not in self._fragments:
            if len(self._fragments) >= 8:  # files are walked folder by folder, as mksquashfs packed them
                self._fragments.pop(next(iter(self._fragments)))
            entry = self.fs._lookup_fragment(index)
            self._fragments[index] = self.fs._read_block(entry.start_block, entry.size)[1]
        return self._fragments[index]


class Squashfs4(Handler):
    NAME = "squashfs"
    # the magic, then s_major (1-4) at offset 28, in the byte order the magic implies
    PATTERNS: ClassVar[tuple[bytes, ...]] = tuple(m + rb".{24}[\x01-\x04]\x00" for m in _LE_MAGICS) + tuple(
        m + rb".{24}\x00[\x01-\x04]" for m in _BE_MAGICS
    )
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        head = bytes(data[offset : offset + len(_LE.super_block)])
        if len(head) < len(_LE.super_block):
            raise FormatError("superblock truncated")
        big = head[:4] in _BE_MAGICS
        sb = (_BE if big else _LE).super_block(head)
        if sb.s_major != 4 or big:
            return _legacy(data, offset, ctx, sb.s_major, big)
        if sb.block_size != 1 << sb.block_log or not 4096 <= sb.block_size <= 1 << 20:
            return None
        end = offset + sb.bytes_used
        if end > len(data):
            raise FormatError(f"truncated: {sb.bytes_used} bytes used, {len(data) - offset} present")
        view = data[offset:end]
        fs = SquashFS(_StrictIO(view, ctx.budget, head[:4] != b"hsqs"))
        if sb.compression == _LZMA_ID:
            fs._compression = _VendorLzma()
        return Chunk(offset, end, filesystem=_Fs(fs))


def _legacy(data: memoryview, offset: int, ctx: Context, major: int, big: bool) -> Chunk | None:
    from nospy.firmware.unpack.handlers.squashfs_legacy import open_legacy  # noqa: PLC0415 - rarely needed

    return open_legacy(data, offset, ctx, major, big)
