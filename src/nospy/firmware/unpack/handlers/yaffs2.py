"""yaffs2: NAND images of (page + spare) chunks, little-endian, as mkyaffs2image and nanddump write them.

References: yaffs2's ``yaffs_guts.h`` (``struct yaffs_obj_hdr``: type, parent, name, mode, owners, size,
alias, rdev) and ``yaffs_packedtags2.h`` (``struct yaffs_packed_tags2_tags_only``: sequence number,
object id, chunk id, byte count, kept in the spare area); the chunk id's top bit marks an object
header carrying extra fields. Where two chunks say the same thing, the higher sequence number wins.

The page/spare layout is not stored in the image: the common ones (512+16 to 16384+512, tags at the
start of the spare or after a 2-byte bad-block marker) are tried and the first whose first chunk is a
valid object header of the root directory is used. Limitations: big-endian images, inband tags and
yaffs1 (512-byte pages with yaffs1 tags) are not read; ECC is not checked or applied.
"""

from __future__ import annotations

import io
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack.base import Chunk, Context, Filesystem, FormatError, Handler, Node, Structs, mode_type

__all__ = ["Yaffs2"]

_Y = Structs(
    "<",
    """
struct obj_hdr {
    uint32  type;
    uint32  parent_obj_id;
    uint16  sum_no_longer_used;
    char    name[256];
    uint16  pad;
    uint32  yst_mode;
    uint32  yst_uid;
    uint32  yst_gid;
    uint32  yst_atime;
    uint32  yst_mtime;
    uint32  yst_ctime;
    uint32  file_size_low;
    int32   equiv_id;
    char    alias[160];
    uint32  yst_rdev;
    uint32  win_times[6];
    uint32  inband_shadowed_obj_id;
    uint32  inband_is_shrink;
    uint32  file_size_high;
};

struct tags {
    uint32  seq_number;
    uint32  obj_id;
    uint32  chunk_id;
    uint32  n_bytes;
};
""",
)
_LAYOUTS = [(2048, 64), (4096, 128), (512, 16), (1024, 32), (8192, 256), (16384, 512)]
_TAG_OFFSETS = (0, 2)
_FILE, _SYMLINK, _DIR, _HARDLINK, _SPECIAL = 1, 2, 3, 4, 5
_ROOT, _UNLINKED, _DELETED = 1, 3, 4
_HEADER_FLAG = 0x80000000
_ID_MASK = 0x0FFFFFFF  # the top nibble of obj_id holds the object type in extra-info headers
_LOWEST_SEQ, _HIGHEST_SEQ = 0x1000, 0xEFFFFF00
_TAGS_SIZE = 16


@dataclass
class _Object:
    seq: int
    header: Any


def _tags(raw: bytes) -> tuple[int, int, int, int] | None:
    t = _Y.tags(raw)
    if t.seq_number == 0xFFFFFFFF or not _LOWEST_SEQ <= t.seq_number <= _HIGHEST_SEQ:
        return None
    return t.seq_number, t.obj_id, t.chunk_id, t.n_bytes


def _layout(data: memoryview, offset: int) -> tuple[int, int, int] | None:
    for page, spare in _LAYOUTS:
        if offset + page + spare > len(data):
            continue
        head = _Y.obj_hdr(bytes(data[offset : offset + len(_Y.obj_hdr)]))
        if head.type not in range(1, 6) or head.sum_no_longer_used != 0xFFFF:
            continue
        marker = bytes(data[offset + page : offset + page + 2]) == b"\xff\xff"
        # a good-block marker (0xffff) before the tags is the Linux NAND layout; tags at 0 otherwise
        for tag_at in sorted(_TAG_OFFSETS, reverse=marker):
            start = offset + page + tag_at
            tags = _tags(bytes(data[start : start + _TAGS_SIZE]))
            if tags is not None and (tags[2] == 0 or tags[2] & _HEADER_FLAG) and tags[1] & _ID_MASK > 0:
                return page, spare, tag_at
    return None


class _Yaffs2Fs(Filesystem):
    def __init__(
        self,
        view: memoryview,
        page: int,
        objects: dict[int, _Object],
        chunks: dict[int, dict[int, tuple[int, int, int]]],
    ) -> None:
        self.view = view
        self.page = page
        self.objects = objects
        self.chunks = chunks
        self.children: dict[int, list[int]] = {}
        for oid, obj in sorted(objects.items()):
            if oid != _ROOT and obj.header.parent_obj_id not in {_UNLINKED, _DELETED}:
                self.children.setdefault(obj.header.parent_obj_id, []).append(oid)

    def _target(self, oid: int) -> int:
        obj = self.objects[oid]
        if obj.header.type == _HARDLINK and obj.header.equiv_id in self.objects:
            return int(obj.header.equiv_id)
        return oid

    def _node(self, oid: int) -> Node:
        h = self.objects[self._target(oid)].header
        kind = {_FILE: EntryType.FILE, _SYMLINK: EntryType.SYMLINK, _DIR: EntryType.DIR}.get(h.type)
        mode = h.yst_mode
        if kind is None:
            kind = mode_type(mode) if h.type == _SPECIAL else EntryType.FILE
        high = 0 if h.file_size_high == 0xFFFFFFFF else h.file_size_high
        size = (high << 32 | h.file_size_low) if kind is EntryType.FILE else 0
        link = bytes(h.alias).split(b"\0")[0].decode("utf-8", "surrogateescape") if kind is EntryType.SYMLINK else None
        return Node(kind, stat.S_IMODE(mode), h.yst_uid, h.yst_gid, size, link)

    def root(self) -> tuple[Node, object]:
        if _ROOT in self.objects:
            return self._node(_ROOT), _ROOT
        return Node(EntryType.DIR, 0o755, 0, 0, 0), _ROOT

    def key(self, ref: object) -> object:
        return ref

    def listdir(self, ref: object) -> list[tuple[str, Node, object]]:
        assert isinstance(ref, int)  # noqa: S101 - handles are object ids
        out: list[tuple[str, Node, object]] = []
        for oid in self.children.get(ref, []):
            name = bytes(self.objects[oid].header.name).split(b"\0")[0].decode("utf-8", "surrogateescape")
            out.append((name, self._node(oid), self._target(oid)))
        return out

    def open_file(self, ref: object) -> BinaryIO:
        assert isinstance(ref, int)  # noqa: S101 - handles are object ids
        size = self._node(ref).size
        out = bytearray()
        for index, (_, pos, n_bytes) in sorted(self.chunks.get(ref, {}).items()):
            start = (index - 1) * self.page
            if start >= size:
                break
            if len(out) < start:
                out += bytes(start - len(out))  # a hole: never-written chunks read as zeros
            out[start:] = self.view[pos : pos + min(n_bytes, self.page)]
        return io.BytesIO(bytes(out[:size]))


class Yaffs2(Handler):
    NAME = "yaffs2"
    # the first chunk: an object header (type 1-5) whose parent is the root (1), checksum field 0xffff
    PATTERNS = (rb"[\x01-\x05]\x00\x00\x00\x01\x00\x00\x00\xff\xff",)
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        layout = _layout(data, offset)
        if layout is None:
            return None
        page, spare, tag_at = layout
        step = page + spare
        objects: dict[int, _Object] = {}
        chunks: dict[int, dict[int, tuple[int, int, int]]] = {}
        pos = offset
        end = offset
        while pos + step <= len(data):
            ctx.budget.check_time()
            tags = _tags(bytes(data[pos + page + tag_at : pos + page + tag_at + _TAGS_SIZE]))
            if tags is None:
                if bytes(data[pos : pos + step]).strip(b"\xff"):
                    break  # neither a chunk nor erased flash: the filesystem ended
                pos += step
                continue
            seq, obj_id, chunk_id, n_bytes = tags
            if chunk_id == 0 or chunk_id & _HEADER_FLAG:
                header = _Y.obj_hdr(bytes(data[pos : pos + len(_Y.obj_hdr)]))
                oid = obj_id & _ID_MASK
                if oid not in objects or objects[oid].seq <= seq:
                    objects[oid] = _Object(seq, header)
            else:
                known = chunks.setdefault(obj_id, {})
                if chunk_id not in known or known[chunk_id][0] <= seq:
                    known[chunk_id] = (seq, pos - offset, n_bytes)
            pos += step
            end = pos
        if not objects:
            raise FormatError("no object headers")
        view = data[offset:end]
        return Chunk(offset, end, filesystem=_Yaffs2Fs(view, page, objects, chunks))
