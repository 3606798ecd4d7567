"""The handler registry and the small parts behind it, tested on their own."""

from __future__ import annotations

import io
import lzma
import re

import pytest

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack import base
from nospy.firmware.unpack.base import FlatFilesystem, Handler, Node, ViewIO
from nospy.firmware.unpack.handlers import HANDLERS
from nospy.firmware.unpack.handlers.squashfs import _VendorLzma
from nospy.firmware.unpack.limits import Budget, Limits


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
    dec = _VendorLzma()
    assert dec.decompress(block, len(data)) == data
    assert dec.decompress(block, len(data)) == data  # the framing found first is kept
