"""squashfs 4.0, including the vendor variants with their own magic and their own LZMA framing.

References: the kernel's ``Documentation/filesystems/squashfs.rst`` and ``fs/squashfs/squashfs_fs.h``;
https://dr-emann.github.io/squashfs/ ; the LZMA SDK's ``lzma.txt`` (LZMA-alone header: one properties
byte, a 32-bit dictionary size, a 64-bit size). Reading is done by ``dissect.squashfs``.

Vendor variants handled: the magics ``shsq``/``hsqt``/``qshs`` used by Realtek, Broadcom and TP-Link
SDKs, and LZMA blocks with the 13-byte LZMA-alone header, with only the 5-byte properties header
(no size, as in the TRENDnet/Atheros trees), or with no header at all (fixed lc=3, lp=0, pb=2).

Older layouts: squashfs 2.x and 3.x (either byte order, zlib or a vendor LZMA) are read in process by
`squashfs3`.

Limitations: squashfs 1.x is listed through Debian's ``unsquashfs`` (`squashfs_legacy`), which rejects
big-endian 4.0 (reported as unreadable); LZMA blocks in a framing other than the four above are not read.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import stat
import struct
import threading
import zlib
from collections import OrderedDict, namedtuple
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, BinaryIO, ClassVar, cast

from dissect.squashfs import SquashFS
from dissect.squashfs.c_squashfs import INODE_STRUCT_MAP, c_squashfs
from dissect.squashfs.exceptions import NotADirectoryError as NotADirectory
from dissect.squashfs.squashfs import FileStream, INode

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
_LE = Structs("<", _DEFS)
_BE = Structs(">", _DEFS)
_LE_MAGICS = (b"hsqs", b"shsq", b"hsqt")
_BE_MAGICS = (b"sqsh", b"qshs", b"tqsh")
_LZMA_ID = 2
_UNCOMPRESSED = 1 << 24  # SQUASHFS_COMPRESSED_BIT_BLOCK: the block is stored as is
_NO_FRAGMENT = c_squashfs.SQUASHFS_INVALID_FRAG  # a file without a tail in a fragment block
_GZIP_ID, _XZ_ID, _ZSTD_ID = 1, 4, 6
_LZMA_DICT_MAX = 1 << 24  # 16 MiB: larger than any block
_LZMA_MEMLIMIT = 64 << 20  # what liblzma may allocate for one LZMA-alone block (its header names the dictionary)
_CACHE_BYTES = 256 << 20  # decompressed blocks kept (dissect keeps 1,024 blocks: up to 1 GiB of 1 MiB ones)
_METADATA_BYTES = 16 << 20  # decoded metadata blocks kept by `_Metadata` (a 100,000-file tree has ~8 MiB)
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


class VendorLzma:
    """squashfs "LZMA" blocks in any of the framings vendors use; the first that decodes is kept."""

    def __init__(self) -> None:
        self._way: int | None = None

    @staticmethod
    def _raw(data: bytes, props: int, dict_size: int, expected: int) -> bytes:
        lc, rest = props % 9, props // 9
        lp, pb = rest % 5, rest // 5
        # a block decodes to at most 1 MiB, so no match reaches further back: a hostile header's 4 GiB
        # dictionary would only make liblzma allocate it
        dict_size = min(max(dict_size, 4096), _LZMA_DICT_MAX)
        filters = [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}]
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters)
        return dec.decompress(data, max_length=expected)

    def _try(self, way: int, data: bytes, expected: int) -> bytes:
        if way == 0:
            dec = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE, memlimit=_LZMA_MEMLIMIT)
            return dec.decompress(data, max_length=expected)
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


class _Bounded:
    """dissect's block codec, with each block's output capped and its stream required to end there.

    dissect decodes gzip, xz and zstd blocks with no output limit: a hostile 1 MiB block of zeros would
    expand to a gigabyte (zlib) or more (xz, zstd) in memory at each read. Here a block may decode to
    at most the block size, or the 8 KiB of a metadata block (dissect asks both with the block size,
    which may be 4 KiB); a stream that does not end within that, or ends early, is an error, as in the
    kernel. LZO and LZ4 are given the size already; LZMA is `VendorLzma`, capped the same way.
    """

    def __init__(self, inner: Any, compression: int) -> None:
        self._inner = inner
        self._id = compression

    def decompress(self, data: bytes, expected: int) -> bytes:
        limit = max(expected, c_squashfs.SQUASHFS_METADATA_SIZE)
        dec: Any
        if self._id == _GZIP_ID:
            dec = zlib.decompressobj()
        elif self._id == _XZ_ID:
            dec = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=_LZMA_MEMLIMIT)
        elif self._id == _ZSTD_ID:
            from backports.zstd import ZstdDecompressor  # noqa: PLC0415 - what dissect itself loads for zstd

            dec = ZstdDecompressor()
        else:
            return cast(bytes, self._inner.decompress(data, limit))
        return decode_to_end(dec, data, limit, "a compressed block")


def decode_to_end(dec: Any, data: bytes, limit: int, what: str) -> bytes:
    """``data`` through decompressor ``dec`` (zlib, lzma or zstd: ``decompress(data, limit)`` and
    ``eof``), which must end its stream within ``limit`` bytes; ``what`` names the block in the error."""
    out: bytes = dec.decompress(data, limit)
    if not dec.eof:
        raise FormatError(f"{what} does not end within {limit} bytes: cut short, or larger than a block can be")
    return out


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


class _SharedBlocks:
    """dissect's block cache made safe to share: a block that several threads want at once is
    decompressed once, by the first; the others wait for it.

    dissect wraps ``_read_block`` in ``functools.lru_cache``, which lets every thread that misses
    decompress the block itself; small files share fragment blocks, so the threads that read files
    ahead (the magic checks, the listing's hashes) would decompress each fragment block several times.
    """

    def __init__(self, read: Callable[[int, int | None], tuple[int, bytes]], size: int = _CACHE_BYTES) -> None:
        self._read = read
        self._size = size
        self._held = 0
        self._done: OrderedDict[tuple[int, int | None], tuple[int, bytes]] = OrderedDict()
        self._pending: dict[tuple[int, int | None], Future[tuple[int, bytes]]] = {}
        self._lock = threading.Lock()

    def __call__(self, block: int, length: int | None = None) -> tuple[int, bytes]:
        key = (block, length)
        with self._lock:
            done = self._done.get(key)
            if done is not None:
                self._done.move_to_end(key)
                return done
            pending = self._pending.get(key)
            if pending is None:
                mine: Future[tuple[int, bytes]] = Future()
                self._pending[key] = mine
        if pending is not None:
            return pending.result()
        try:
            result = self._read(block, length)
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            mine.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._done[key] = result
            self._held += len(result[1])
            while self._held > self._size and len(self._done) > 1:
                self._held -= len(self._done.popitem(last=False)[1][1])
        mine.set_result(result)
        return result


def _unpacker(declared: Any) -> tuple[struct.Struct, Any]:
    """dissect's C declaration of a squashfs header as a `struct.Struct` and a named tuple of its fields.

    dissect.cstruct builds an object per header it parses (tens of microseconds); directories and
    inodes are parsed here in bulk from the same declarations, so the walk costs what its I/O costs.
    """
    names = [name for name, f in declared.fields.items() if f.type.size]  # not the trailing name[0]/block_list[0]
    layout = struct.Struct("<" + "".join(declared.fields[name].type.packchar for name in names))
    if layout.size != len(declared):
        raise TypeError(f"{declared.__name__} is not a packed run of integers")
    return layout, namedtuple(declared.__name__, names)


_DIR_HEADER, _ = _unpacker(c_squashfs.squashfs_dir_header)
_DIR_ENTRY, _ = _unpacker(c_squashfs.squashfs_dir_entry)
_BASE_INODE, _ = _unpacker(c_squashfs.squashfs_base_inode_header)
_INODES = {kind: _unpacker(declared) for kind, declared in INODE_STRUCT_MAP.items()}


class _INode(INode):  # type: ignore[misc]
    """dissect's inode without its per-instance ``listdir`` cache, which the walk never uses (`_children`
    lists directories) and which costs a ``functools`` wrapper per inode: about a quarter of a walk's time."""

    def __init__(  # noqa: PLR0917 - dissect's signature
        self,
        fs: SquashFS,
        block: int,
        offset: int,
        name: str | None = None,
        type: int | None = None,  # noqa: A002 - dissect's name
        inode_number: int | None = None,
        parent: INode | None = None,
    ) -> None:
        self.fs = fs
        self.block = block
        self.offset = offset
        self.name = name
        self._type = type
        self._inode_number = inode_number
        self.parent = parent


def _children(fs: SquashFS, parent: INode) -> list[INode]:
    """The children of directory ``parent``, as dissect's ``INode.iterdir`` gives them, with their
    inode headers already read (what ``INode._metadata`` would read for each one later)."""
    if not parent.is_dir():
        raise NotADirectory(f"{parent!r} is not a directory")
    size: int = parent.size
    start = fs.sb.directory_table_start + parent.header.start_block
    offset: int = parent.header.offset
    read = fs._read_metadata
    children = []
    done = 0
    while done < size - 3:
        start, offset, data = read(start, offset, _DIR_HEADER.size)
        count, start_block, inode_number = _DIR_HEADER.unpack(data)
        done += len(data)
        for _ in range(count + 1):
            start, offset, data = read(start, offset, _DIR_ENTRY.size)
            entry_offset, entry_number, kind, name_size = _DIR_ENTRY.unpack(data)
            done += len(data)
            start, offset, name = read(start, offset, name_size + 1)
            done += len(name)
            child = _INode(
                fs,
                start_block,
                entry_offset,
                name.decode(errors="surrogateescape"),
                kind,
                inode_number + entry_number,
                parent,
            )
            _read_inode(fs, child)
            children.append(child)
    return children


def _read_inode(fs: SquashFS, inode: INode) -> None:
    block = fs.sb.inode_table_start + inode.block
    data_block, data_offset, data = fs._read_metadata(block, inode.offset, _BASE_INODE.size)
    kind = _BASE_INODE.unpack(data)[0]
    if kind not in _INODES:
        raise FormatError(f"inode {inode.inode_number}: unknown type {kind}")
    layout, header = _INODES[kind]
    if layout.size != _BASE_INODE.size:
        data_block, data_offset, data = fs._read_metadata(block, inode.offset, layout.size)
    # dissect's cached properties, as INode._metadata sets them
    inode.__dict__.update(header=header._make(layout.unpack(data)), data_block=data_block, data_offset=data_offset)


class _Metadata:
    """dissect's metadata reading (inode, directory, fragment and id tables), with the blocks kept
    decoded here, without a lock: a walk reads them several times per entry, a few bytes at a time;
    fragment entries and owner ids are kept parsed.

    A block two threads miss at once is decoded by both: harmless, it is 8 KiB. Blocks are kept up to
    `_METADATA_BYTES`; past that, they are read through the shared block cache alone.
    """

    def __init__(self, fs: SquashFS) -> None:
        self._read_block = fs._read_block
        self._spanning = fs._read_metadata  # dissect's own, for a read that crosses blocks
        self._lookup_fragment = fs._lookup_fragment
        self._blocks: dict[int, tuple[int, bytes]] = {}
        self._held = 0
        self._fragments: dict[int, Any] = {}
        self._lookup_id = fs._lookup_id
        self._ids: dict[int, int] = {}

    def read(self, block: int, offset: int, length: int) -> tuple[int, int, bytes]:
        """dissect's ``SquashFS._read_metadata``: the same result."""
        if not length:  # dissect reads nothing then, not even a block past the end (an empty symlink's)
            return block, offset, b""
        got = self._blocks.get(block)
        if got is None:
            got = self._read_block(block)
            size = len(got[1])
            # a block larger than the format's 8 KiB is corrupt: read, as dissect reads it, but not kept
            if size <= c_squashfs.SQUASHFS_METADATA_SIZE and self._held + size <= _METADATA_BYTES:
                self._blocks[block] = got
                self._held += size
        data = got[1]
        end = offset + length
        if offset >= 0 and end < len(data):  # within the block (a read to its very end moves to the next)
            return block, end, data[offset:end]
        return self._spanning(block, offset, length)  # type: ignore[no-any-return]

    def owner(self, index: int) -> int:
        """dissect's ``SquashFS._lookup_id``, each id read once (every inode asks for two)."""
        found = self._ids.get(index)
        if found is None:
            found = self._ids[index] = self._lookup_id(index)
        return found

    def fragment(self, index: int) -> Any:
        """dissect's ``SquashFS._lookup_fragment``, each entry parsed once (every file with a tail asks)."""
        entry = self._fragments.get(index)
        if entry is None:
            entry = self._fragments[index] = self._lookup_fragment(index)
        return entry


class _Fs(Filesystem):
    def __init__(self, fs: SquashFS) -> None:
        self.fs = fs
        fs._read_block = _SharedBlocks(fs._read_block.__wrapped__)
        meta = _Metadata(fs)
        fs._read_metadata, fs._lookup_fragment, fs._lookup_id = meta.read, meta.fragment, meta.owner

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
        assert isinstance(ref, INode)  # noqa: S101 - directory handles are dissect's inodes
        return [(child.name, self._node(child), child) for child in _children(self.fs, ref)]

    def open_file(self, ref: object) -> BinaryIO:
        inode: Any = ref
        size: int = inode.size
        fragment: int = inode.header.fragment
        if 0 < size < self.fs.block_size and fragment != _NO_FRAGMENT:
            # the whole file is a tail in a fragment block (most files of a root filesystem): read at
            # once from the shared block cache, without dissect's stream objects (about 60 us a file,
            # opened once for its magic and once for its hash)
            return io.BytesIO(self.fs._read_fragment(fragment, inode.header.offset, size))
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
        # decoded once however many files' tails it holds, and by whichever thread asks first: the
        # block cache (`_SharedBlocks`) is shared by threads
        entry = self.fs._lookup_fragment(index)
        data: bytes = self.fs._read_block(entry.start_block, entry.size)[1]
        return data


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
        fs._compression = _Bounded(VendorLzma() if sb.compression == _LZMA_ID else fs._compression, sb.compression)
        return Chunk(offset, end, filesystem=_Fs(fs))


def _legacy(data: memoryview, offset: int, ctx: Context, major: int, big: bool) -> Chunk | None:
    # both rarely needed: imported when an old layout is found
    if major in {2, 3}:
        from nospy.firmware.unpack.handlers.squashfs3 import open_v3  # noqa: PLC0415

        return open_v3(data, offset, ctx, major, big)
    from nospy.firmware.unpack.handlers.squashfs_legacy import open_legacy  # noqa: PLC0415

    return open_legacy(data, offset, ctx, major, big)
