"""Archives: tar (ustar, GNU, pax), cpio (newc, crc, odc), zip and 7z, read by libarchive.

References: POSIX.1-2017 ``pax`` (ustar and cpio odc headers), the newc layout in the kernel's
``Documentation/driver-api/early-userspace/buffer-format.rst``, PKWARE APPNOTE 6.3.10 (zip end of
central directory), and 7-Zip's ``7zFormat.txt`` (signature header). This module only finds where an
archive ends (headers declared as C structs); libarchive (``libarchive-c``) reads the members.

Member names are placed as on a device: ``..`` stops at the root and is reported, so a traversal
archive can never name anything outside its own tree. Hard links share their target's content.
Limitations: encrypted zip/7z members are listed but not read; multi-volume archives are not joined.
"""

from __future__ import annotations

import re

from nospy.firmware.tree import EntryType
from nospy.firmware.unpack.base import Chunk, Context, FlatFilesystem, FormatError, Handler, Node, Structs, mode_type

__all__ = ["Cpio", "SevenZip", "Tar", "Zip"]

_C = Structs(
    "<",
    """
struct zip_eocd {
    char    magic[4];
    uint16  disk;
    uint16  cd_disk;
    uint16  disk_entries;
    uint16  entries;
    uint32  cd_size;
    uint32  cd_offset;
    uint16  comment_len;
};

struct sevenzip_start {
    char    magic[6];
    uint8   major;
    uint8   minor;
    uint32  start_crc;
    uint64  next_header_offset;
    uint64  next_header_size;
    uint32  next_header_crc;
};

struct cpio_newc {
    char    magic[6];
    char    ino[8];
    char    mode[8];
    char    uid[8];
    char    gid[8];
    char    nlink[8];
    char    mtime[8];
    char    filesize[8];
    char    devmajor[8];
    char    devminor[8];
    char    rdevmajor[8];
    char    rdevminor[8];
    char    namesize[8];
    char    check[8];
};

struct cpio_odc {
    char    magic[6];
    char    dev[6];
    char    ino[6];
    char    mode[6];
    char    uid[6];
    char    gid[6];
    char    nlink[6];
    char    rdev[6];
    char    mtime[11];
    char    namesize[6];
    char    filesize[11];
};
""",
)
_EOCD = re.compile(rb"PK\x05\x06")
_BLOCK = 512


def _text(value: str | bytes | None) -> str:
    """libarchive-c gives names that are not UTF-8 as bytes: keep their bytes as surrogates."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value or ""


def read_members(raw: bytes, ctx: Context, offset: int) -> FlatFilesystem:
    """Every member of the archive ``raw`` into a flat filesystem, contents in memory (charged)."""
    import libarchive  # noqa: PLC0415 - loaded when an image holds an archive (see Structs)

    fs = FlatFilesystem()
    members: dict[str, tuple[Node, bytes]] = {}
    try:
        with libarchive.memory_reader(raw) as archive:
            for entry in archive:
                ctx.budget.check_time()
                name = _text(entry.pathname)
                link = _text(entry.linkpath) or None
                mode = entry.mode
                if entry.islnk and link:  # a hard link: the same node and content as its target
                    target = members.get(link.lstrip("/").removeprefix("./"))
                    if target is None:
                        ctx.issue(offset, f"hard link {name!r} to {link!r}, which is not in the archive before it")
                        continue
                    fs.add(name, *target)
                    members[name.lstrip("/").removeprefix("./")] = target
                    continue
                kind = mode_type(entry.filetype)  # tar keeps the type apart from the mode bits
                content = b""
                if kind is EntryType.FILE:
                    parts = []
                    for block in entry.get_blocks():
                        ctx.budget.charge(len(block))
                        parts.append(block)
                    content = b"".join(parts)
                node = Node(kind, mode & 0o7777, entry.uid, entry.gid, len(content), link if entry.issym else None)
                members[name.lstrip("/").removeprefix("./")] = (node, content)
                fs.add(name, node, content)
    except libarchive.ArchiveError as exc:
        ctx.issue(offset, f"archive unreadable after {len(members)} members: {exc}")
    for name, path in fs.renamed:
        ctx.issue(offset, f"member {name!r} points outside the archive: shown as {path}")
    return fs


def _tar_end(data: memoryview, offset: int) -> int | None:
    pos = offset
    first = True
    while pos + _BLOCK <= len(data):
        block = bytes(data[pos : pos + _BLOCK])
        if block == bytes(_BLOCK):
            return min(len(data), pos + 2 * _BLOCK)
        stored = block[148:156].split(b"\0")[0].strip()
        try:
            declared = int(stored or b"-1", 8)
        except ValueError:
            declared = -1
        if declared != sum(block[:148]) + 8 * 32 + sum(block[156:]):
            if first:
                return None
            return pos  # a broken header ends the archive; libarchive reports it
        first = False
        size_field = block[124:136]
        if size_field[0] & 0x80:  # GNU base-256 size
            size = int.from_bytes(size_field[1:], "big")
        else:
            size = int(size_field.split(b"\0")[0].strip() or b"0", 8)
        pos += _BLOCK + (size + _BLOCK - 1) // _BLOCK * _BLOCK
    return min(pos, len(data))


class Tar(Handler):
    NAME = "tar"
    PATTERNS = (rb"ustar(?:\x00|  \x00)",)
    OFFSET = 257  # the magic follows name, mode, uid, gid, size, mtime, chksum, typeflag, linkname
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        end = _tar_end(data, offset)
        if end is None:
            return None
        return Chunk(offset, end, filesystem=read_members(bytes(data[offset:end]), ctx, offset))


class Cpio(Handler):
    NAME = "cpio"
    PATTERNS = (rb"07070[12][0-9A-Fa-f]{8}", rb"070707[0-7]{6}")
    DOC = __doc__ or ""
    FILESYSTEM = True

    @staticmethod
    def _end(data: memoryview, offset: int) -> int:
        pos = offset
        while pos < len(data):
            magic = bytes(data[pos : pos + 6])
            if magic in {b"070701", b"070702"}:
                raw = bytes(data[pos : pos + len(_C.cpio_newc)])
                if len(raw) < len(_C.cpio_newc):
                    break
                hdr = _C.cpio_newc(raw)
                namesize, filesize = int(hdr.namesize, 16), int(hdr.filesize, 16)
                name_end = pos + len(_C.cpio_newc) + namesize
                name = bytes(data[pos + len(_C.cpio_newc) : name_end - 1])
                pos = (name_end + 3) & ~3
                pos = (pos + filesize + 3) & ~3
            elif magic == b"070707":
                raw = bytes(data[pos : pos + len(_C.cpio_odc)])
                if len(raw) < len(_C.cpio_odc):
                    break
                hdr = _C.cpio_odc(raw)
                namesize, filesize = int(hdr.namesize, 8), int(hdr.filesize, 8)
                name = bytes(data[pos + len(_C.cpio_odc) : pos + len(_C.cpio_odc) + namesize - 1])
                pos += len(_C.cpio_odc) + namesize + filesize
            else:
                break
            if name == b"TRAILER!!!":
                break
        return min(pos, len(data))

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        try:
            end = self._end(data, offset)
        except ValueError as exc:
            raise FormatError(f"bad header field: {exc}") from exc
        return Chunk(offset, end, filesystem=read_members(bytes(data[offset:end]), ctx, offset))


def _next_eocd(data: memoryview, offset: int, searches: dict[str, tuple[int, int | None]]) -> int | None:
    """Where the first end-of-central-directory record at or after ``offset`` starts, or None.

    The last search in the same data is reused when it answers for ``offset`` too: data dense with
    local-header magics (and no central directory) would otherwise be searched to its end from each.
    """
    searched, found = searches.get("zip-eocd", (-1, None))
    if 0 <= searched <= offset and (found is None or found >= offset):
        return found
    m = _EOCD.search(data, offset)
    searches["zip-eocd"] = (offset, m.start() if m is not None else None)
    return m.start() if m is not None else None


class Zip(Handler):
    NAME = "zip"
    PATTERNS = (rb"PK\x03\x04",)
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        at = _next_eocd(data, offset, ctx.searches)
        if at is None:
            return None  # no central directory after it: a local-header magic inside other data
        raw = bytes(data[at : at + len(_C.zip_eocd)])
        if len(raw) < len(_C.zip_eocd):
            raise FormatError("end of central directory truncated")
        eocd = _C.zip_eocd(raw)
        if at - eocd.cd_size - eocd.cd_offset != offset:
            return None  # the central directory does not describe an archive starting here
        end = min(len(data), at + len(_C.zip_eocd) + eocd.comment_len)
        return Chunk(offset, end, filesystem=read_members(bytes(data[offset:end]), ctx, offset))


class SevenZip(Handler):
    NAME = "7z"
    PATTERNS = (rb"7z\xbc\xaf\x27\x1c",)
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        raw = bytes(data[offset : offset + len(_C.sevenzip_start)])
        if len(raw) < len(_C.sevenzip_start):
            return None
        hdr = _C.sevenzip_start(raw)
        end = offset + len(_C.sevenzip_start) + hdr.next_header_offset + hdr.next_header_size
        if end > len(data):
            raise FormatError(f"truncated: {end - offset} bytes declared, {len(data) - offset} present")
        return Chunk(offset, end, filesystem=read_members(bytes(data[offset:end]), ctx, offset))
