"""The handler registry and the small parts behind it, tested on their own."""

from __future__ import annotations

import io
import lzma
import os
import random
import re
import socket
import subprocess
import zlib
from pathlib import Path
from unittest import mock

import pytest
from backports import zstd
from dissect.squashfs import SquashFS
from dissect.squashfs.squashfs import INode
from hypothesis import given, settings
from hypothesis import strategies as st

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack import base, image
from nospy.firmware.unpack.base import FlatFilesystem, FormatError, Handler, Node, ViewIO
from nospy.firmware.unpack.handlers import HANDLERS
from nospy.firmware.unpack.handlers.squashfs import _INODES, Squashfs4, VendorLzma, _Bounded, _children, _INode
from nospy.firmware.unpack.image import _Engine
from nospy.firmware.unpack.limits import Budget, Limits
from unpack_images import make_rootfs


def _subclasses(cls: type) -> set[type]:
    out: set[type] = set()
    sub: type
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def test_every_handler_is_registered_and_declared() -> None:
    concrete = {c for c in _subclasses(Handler) if not c.__name__.startswith("_")}
    assert concrete == {type(h) for h in HANDLERS}
    names = [h.NAME for h in HANDLERS]
    assert len(names) == len(set(names))
    for h in HANDLERS:
        assert h.PATTERNS and all(re.compile(p, re.DOTALL) for p in h.PATTERNS), h.NAME
        assert "References:" in h.DOC and "Limitations:" in h.DOC, h.NAME


def test_view_io_reads_and_seeks_without_copying_the_view() -> None:
    view = memoryview(b"0123456789")
    fh = ViewIO(view)
    assert fh.read(3) == b"012"
    assert fh.seek(-2, io.SEEK_END) == 8
    assert fh.read() == b"89"
    assert fh.read(5) == b""
    fh.seek(4)
    buf = bytearray(4)
    assert fh.readinto(buf) == 4 and bytes(buf) == b"4567"


def test_flat_filesystem_places_names_as_on_a_device() -> None:
    fs = FlatFilesystem()
    node = Node(EntryType.FILE, 0o644, 0, 0, 1)
    for name in ("./etc/passwd", "../../etc/shadow", "/abs/file", "a/b/../c"):
        fs.add(name, node, b"x")
    paths = {p for p, _, _ in fs.walk(base.Context(budget=_budget(), chain="t"))}
    assert paths == {"/", "/etc", "/etc/passwd", "/etc/shadow", "/abs", "/abs/file", "/a", "/a/c"}
    assert fs.renamed == [("../../etc/shadow", "/etc/shadow"), ("a/b/../c", "/a/c")]


def _budget() -> Budget:
    return Budget(Limits())


def _lzma1(data: bytes, lc: int, lp: int, pb: int) -> bytes:
    filters = [{"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": 1 << 16}]
    return lzma.compress(data, format=lzma.FORMAT_RAW, filters=filters)


@pytest.mark.parametrize("framing", ["alone", "props-only", "props-and-size", "headerless"])
def test_vendor_lzma_framings(framing: str) -> None:
    data = b"squashfs metadata block " * 300
    props = (2 * 5 + 2) * 9 + 1  # lc=1 lp=2 pb=2, as in the TRENDnet tree
    dict_size = (1 << 16).to_bytes(4, "little")
    if framing == "alone":
        block = lzma.compress(data, format=lzma.FORMAT_ALONE)
    elif framing == "props-only":
        block = bytes([props]) + dict_size + _lzma1(data, 1, 2, 2)
    elif framing == "props-and-size":
        block = bytes([props]) + dict_size + len(data).to_bytes(8, "little") + _lzma1(data, 1, 2, 2)
    else:
        block = _lzma1(data, 3, 0, 2)
    dec = VendorLzma()
    assert dec.decompress(block, len(data)) == data
    assert dec.decompress(block, len(data)) == data  # the framing found first is kept


@pytest.mark.parametrize("codec", ["gzip", "xz", "zstd"])
def test_squashfs_blocks_decode_no_further_than_a_block(codec: str) -> None:
    """A block decodes as before; one that expands beyond the block size is refused once the block size
    is reached (not decoded whole in memory), and so is one cut short."""

    def pack(data: bytes) -> bytes:
        return zlib.compress(data) if codec == "gzip" else lzma.compress(data) if codec == "xz" else zstd.compress(data)

    codec_id = {"gzip": 1, "xz": 4, "zstd": 6}[codec]
    block = random.Random(1).randbytes(100_000) + bytes(31_072)  # noqa: S311 - test data, not a secret
    assert _Bounded(None, codec_id).decompress(pack(block), 131072) == block
    assert _Bounded(None, codec_id).decompress(pack(block[:8192]), 4096) == block[:8192]  # metadata, 4 KiB blocks
    with pytest.raises(FormatError, match="does not end"):
        _Bounded(None, codec_id).decompress(pack(bytes(64 << 20)), 131072)
    with pytest.raises(FormatError, match="does not end"):
        _Bounded(None, codec_id).decompress(pack(block)[:-40], 131072)


def _inodes_as_dissect_reads_them(fs: SquashFS, inodes: list[INode]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for inode in inodes:
        fields = _INODES[inode.header.inode_type][1]._fields
        header = tuple(getattr(inode.header, f) for f in fields)
        extra = inode.block_list if inode.is_file() else inode.link if inode.is_symlink() else None
        out.append((inode.name, inode.block, inode.offset, inode.inode_number, inode.mode, header, extra))
    return out


def test_squashfs_directories_read_in_bulk_as_dissect_reads_them(tmp_path: Path, shared: Path) -> None:
    root = tmp_path / "root"
    (root / "big").mkdir(parents=True)
    for i in range(400):  # a directory larger than one metadata block: an extended directory inode
        (root / "big" / f"a-file-with-a-rather-long-name-{i:04d}").write_bytes(b"x" * i)
    (root / "hard").write_bytes(b"linked")
    os.link(root / "hard", root / "hard2")  # hard links: extended file inodes
    (root / "link").symlink_to("big/a-file-with-a-rather-long-name-0001")
    (root / "huge").write_bytes(os.urandom(300_000))  # full blocks and a fragment
    os.mkfifo(root / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "socket"))
    image = tmp_path / "types.sqfs"
    devices = ["dev d 755 0 0", "dev/console c 600 0 0 5 1", "dev/sda b 660 0 6 8 0"]
    subprocess.run(
        ["mksquashfs", root, image, "-noappend", "-quiet", "-no-progress", *(a for d in devices for a in ("-p", d))],
        check=True,
    )
    for path in (image, shared / "firmware" / "trendnet-tew733gr-rootfs.squashfs"):
        chunk = Squashfs4().identify(memoryview(path.read_bytes()), 0, base.Context(budget=_budget(), chain="t"))
        assert chunk is not None and chunk.filesystem is not None
        fs = chunk.filesystem.fs  # type: ignore[attr-defined]
        # _INode sets what dissect's constructor sets, but its per-inode listdir cache
        args = (fs, 0, 0, "x", 1, 1, None)
        assert set(vars(INode(*args))) - {"listdir"} == set(vars(_INode(*args)))
        kinds = set()
        todo = [fs.root]
        while todo:
            directory = todo.pop()
            ours, theirs = _children(fs, directory), list(directory.iterdir())
            assert _inodes_as_dissect_reads_them(fs, ours) == _inodes_as_dissect_reads_them(fs, theirs)
            kinds |= {c.header.inode_type for c in ours}
            todo += [c for c in theirs if c.is_dir()]
        if path == image:
            assert kinds == set(range(1, 10)), kinds  # every basic type, extended directories and files


def test_squashfs_metadata_reads_as_dissect_reads_them(tmp_path: Path, shared: Path) -> None:
    """The walk's metadata reads (kept decoded, `_Metadata`) give what dissect's own give: within a
    block, to its very end, across blocks and past the table; fragment entries and owner ids too."""
    root = make_rootfs(tmp_path / "root")
    for i in range(300):  # tables of several metadata blocks, and a fragment table
        (root / f"f{i:03d}-{'n' * (i % 40)}").write_bytes(os.urandom(i * 7))
    image = tmp_path / "meta.sqfs"
    subprocess.run(["mksquashfs", root, image, "-noappend", "-quiet", "-no-progress"], check=True)
    for path in (image, shared / "firmware" / "trendnet-tew733gr-rootfs.squashfs"):
        chunk = Squashfs4().identify(memoryview(path.read_bytes()), 0, base.Context(budget=_budget(), chain="t"))
        assert chunk is not None and chunk.filesystem is not None
        fs = chunk.filesystem.fs  # type: ignore[attr-defined]
        ends = (fs.sb.directory_table_start, fs.sb.fragment_table_start)
        for start, end in zip((fs.sb.inode_table_start, fs.sb.directory_table_start), ends, strict=True):
            block = start
            while block < end:
                following, data = fs._read_block(block)
                size = len(data)
                for offset in {0, 1, size // 2, size - 1, size, size + 3}:
                    for length in {0, 1, size - offset - 1, size - offset, size - offset + 1, 3 * size}:
                        if length < 0:
                            continue
                        try:
                            theirs: object = SquashFS._read_metadata(fs, block, offset, length)
                        except Exception as exc:  # noqa: BLE001 - past the image's end: both must fail alike
                            theirs = type(exc)
                        try:
                            ours: object = fs._read_metadata(block, offset, length)
                        except Exception as exc:  # noqa: BLE001
                            ours = type(exc)
                        assert ours == theirs, (path.name, block, offset, length)
                block = following
        past = fs.sb.bytes_used  # a block past the end (an empty symlink's target may point there): no read
        assert fs._read_metadata(past, 5, 0) == SquashFS._read_metadata(fs, past, 5, 0) == (past, 5, b"")
        for index in range(fs.sb.fragments):
            assert fs._lookup_fragment(index) == SquashFS._lookup_fragment(fs, index)
        for index in range(fs.sb.no_ids):
            assert fs._lookup_id(index) == SquashFS._lookup_id(fs, index)
        assert fs.sb.fragments > 0


def _magic_offsets(data: bytes, window: int, *, dense: bool = False) -> list[int]:
    """Every offset the engine's magic search gives, window by window (windows of ``window`` bytes);
    ``dense``: as on data dense with magics' first bytes (re, not YARA-X)."""
    engine = _Engine(HANDLERS, Limits(), "test")
    engine._dense = dense
    offsets: list[int] = []
    start = 0
    with mock.patch.object(image, "_WINDOW", window):
        while start < len(data):
            hits, start = engine._search(memoryview(data), start)
            offsets += hits
    return offsets


def _re_offsets(data: bytes) -> list[int]:
    """Every offset where a handler's pattern matches, by Python's re, one offset at a time."""
    patterns = [re.compile(p, re.DOTALL) for h in HANDLERS for p in h.PATTERNS]
    return [i for i in range(len(data)) if any(p.match(data, i) for p in patterns)]


# Matches whose literal part is not at the pattern's start, and a decoy of each (the literal part
# without the right bytes before it).
_TRICKY_EXAMPLES = (
    (b"\x00\x00\x00\x02TP-LINK Technologies\x00", b"\x00\x00\x01\x02TP-LINK Technologies\x00"),
    (
        b"\x45\x3d\xcd\x28" + bytes(12) + b"Compressed ROMFS",
        b"\x28\xcd\x3d\x45" + bytes(12) + b"Compressed ROMFS",
        b"\x45\x3d\xcd\x29" + bytes(12) + b"Compressed ROMFS",
    ),
    (b"\x03\x00\x00\x00\x01\x00\x00\x00\xff\xff", b"\x09\x00\x00\x00\x01\x00\x00\x00\xff\xff"),
    (b"BZh91AY&SY", b"BZh01AY&SY"),
    (b"ustar\x00", b"ustar  \x00", b"ustar \x00"),
)


def test_magic_search_finds_what_re_finds() -> None:
    """YARA-X, given the handlers' patterns, finds exactly the offsets Python's re matches them at,
    across window edges too."""
    rng = random.Random(3)  # noqa: S311 - reproducible test data, not cryptography
    data = bytearray(rng.choice(b"\x00\x00\x00\x01\x02\xff") for _ in range(50_000))
    for examples in _TRICKY_EXAMPLES:
        for example in examples:
            for _ in range(5):
                pos = rng.randrange(len(data) - len(example))
                data[pos : pos + len(example)] = example
    expected = _re_offsets(bytes(data))
    assert len(expected) >= 20
    assert _magic_offsets(bytes(data), 4099) == expected
    assert _magic_offsets(bytes(data), 1 << 20) == expected
    assert _magic_offsets(bytes(data), 4099, dense=True) == expected


_PATTERNS = [re.compile(p, re.DOTALL) for p in dict.fromkeys(p for h in HANDLERS for p in h.PATTERNS)]


@pytest.mark.parametrize("pattern", _PATTERNS, ids=lambda p: repr(p.pattern)[:40])
@settings(max_examples=15, deadline=None)
@given(draw=st.data())
def test_magic_search_finds_what_re_finds_for_every_magic(pattern: re.Pattern[bytes], draw: st.DataObject) -> None:
    parts = []
    for _ in range(draw.draw(st.integers(1, 4))):
        parts.append(draw.draw(st.binary(max_size=40)))
        parts.append(draw.draw(st.from_regex(pattern, fullmatch=True)))
    data = b"".join(parts)
    expected = _re_offsets(data)
    assert expected
    window = draw.draw(st.sampled_from([7, 64, 1 << 20]))
    assert _magic_offsets(data, window) == expected
    assert _magic_offsets(data, window, dense=True) == expected


_BY_HANDLER = [(h, re.compile(p, re.DOTALL)) for h in HANDLERS for p in h.PATTERNS]


@pytest.mark.parametrize(("handler", "pattern"), _BY_HANDLER, ids=lambda x: getattr(x, "NAME", "")[:20])
@settings(max_examples=30, deadline=None)
@given(draw=st.data())
def test_a_handler_is_asked_wherever_its_magic_may_start(
    handler: Handler, pattern: re.Pattern[bytes], draw: st.DataObject
) -> None:
    """The engine asks, where a magic was found, only the handlers whose patterns may start with the
    byte there: every match of every pattern starts with one of its handler's bytes."""
    match = draw.draw(st.from_regex(pattern, fullmatch=True))
    assert match[0] in image._first_bytes(handler.PATTERNS)


def test_first_bytes_of_patterns() -> None:
    assert image._first_bytes([rb"hsqs|sqsh"]) == {ord("h"), ord("s")}
    assert image._first_bytes([rb"[\x01-\x03]x", rb"(?:ab)?c"]) == {1, 2, 3, ord("a"), ord("c")}
    assert image._first_bytes([rb"[^\x00]"]) == set(range(1, 256))
    assert image._first_bytes([rb"x*"]) == set(range(256))  # may match nothing: any byte
    assert image._first_bytes([rb"\w"]) == set(range(256))  # a category, not read: any byte
    assert image._first_bytes([rb"(?i)hsqs"]) == set(range(256))  # H as well as h


def test_magic_patterns_fit_the_search_overlap() -> None:
    """A match longer than the overlap of two windows would be missed at a window's edge."""
    for pattern in _PATTERNS:
        assert re._parser.parse(pattern.pattern, re.DOTALL).getwidth()[1] <= image._LONGEST_MAGIC


def test_a_window_dense_with_magics_puts_the_search_on_re() -> None:
    engine = _Engine(HANDLERS, Limits(), "test")
    data = b"hsqs" * 5000 + b"UBI#\x01" + bytes(100)
    expected = _re_offsets(data)
    assert expected == [19_976, 20_000]  # a squashfs magic whose version bytes are UBI's, and UBI's
    with mock.patch.object(image, "_DENSE_SECONDS", -1.0):  # every window counts as slow
        assert engine._search(memoryview(data), 0)[0] == expected
    assert engine._dense
    assert engine._search(memoryview(data), 0)[0] == expected  # the same, found by re
