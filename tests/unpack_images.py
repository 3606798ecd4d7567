"""Images built with Debian's own tools (squashfs-tools, mtd-utils, u-boot-tools, genext2fs ...)
from one small busybox root filesystem, for the unpacker's tests. Not a test module itself."""

from __future__ import annotations

import bz2
import gzip
import itertools
import lzma
import os
import shutil
import stat
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nadmin:x:1000:1000::/home/admin:/bin/sh\n",
    "etc/shadow": b"root::19000:0:99999:7:::\n",
    "etc/inittab": b"::sysinit:/etc/init.d/rcS\nttyS0::respawn:/bin/sh\n",
    "etc/init.d/rcS": b"#!/bin/sh\ntelnetd -l /bin/sh\n",
    "usr/bin/diag": b"#!/bin/sh\necho diag\n",
    "www/index.html": b"<html>router</html>\n" * 50,
}
MODES = {"etc/shadow": 0o600, "etc/init.d/rcS": 0o755, "usr/bin/diag": 0o4755}
LINKS = {"bin/sh": "busybox", "sbin/init": "../bin/busybox", "etc/localtime": "/tmp/TZ"}


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is missing: ./dev.sh install (as root) installs debian-packages.txt")
    return path


def run(*args: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([tool(str(args[0])), *map(str, args[1:])], check=True, capture_output=True, cwd=cwd)


def make_rootfs(at: Path) -> Path:
    for rel, content in ROOT_FILES.items():
        (at / rel).parent.mkdir(parents=True, exist_ok=True)
        (at / rel).write_bytes(content)
    (at / "bin").mkdir(exist_ok=True)
    (at / "sbin").mkdir(exist_ok=True)
    shutil.copy(tool("busybox"), at / "bin" / "busybox")
    for rel, mode in MODES.items():
        (at / rel).chmod(mode)
    for rel, target in LINKS.items():
        (at / rel).symlink_to(target)
    os.utime(at, (0, 0))
    return at


def _ubi(root: Path, out: Path) -> None:
    ubifs = out.with_suffix(".ubifs")
    run("mkfs.ubifs", "-r", root, "-m", "2048", "-e", "126976", "-c", "64", "-o", ubifs)
    ini = out.with_suffix(".ini")
    ini.write_text(f"[rootfs]\nmode=ubi\nimage={ubifs}\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\n")
    run("ubinize", "-o", out, "-m", "2048", "-p", "128KiB", ini)


def _archive(fmt: str) -> Callable[[Path, Path], None]:
    def build(root: Path, out: Path) -> None:
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
        if fmt in {"newc", "odc"}:
            subprocess.run(
                [tool("cpio"), "-o", "-H", fmt, "--quiet", "-F", str(out)],
                input="\n".join(names).encode(),
                cwd=root,
                check=True,
            )
        elif fmt == "tar":
            run("tar", "-cf", out, "--numeric-owner", "--no-recursion", "-C", root, *names)
        elif fmt == "zip":
            run("zip", "-qry", out, ".", cwd=root)
        elif fmt == "7z":
            run("7zz", "a", "-t7z", "-snl", out, ".", cwd=root)

    return build


def _compressed(inner: Callable[[Path, Path], None], codec: str) -> Callable[[Path, Path], None]:
    def build(root: Path, out: Path) -> None:
        plain = out.with_suffix(".plain")
        inner(root, plain)
        data = plain.read_bytes()
        if codec == "gzip":
            out.write_bytes(gzip.compress(data))
        elif codec == "xz":
            out.write_bytes(lzma.compress(data))
        elif codec == "lzma":
            out.write_bytes(lzma.compress(data, format=lzma.FORMAT_ALONE))
        elif codec == "bzip2":
            out.write_bytes(bz2.compress(data))
        elif codec == "lz4":
            run("lz4", "-q", "-f", plain, out)
        else:  # zstd, lzop
            run(codec, "-q", "-f", plain, "-o", out)

    return build


def _squashfs(comp: str, *extra: str) -> Callable[[Path, Path], None]:
    def build(root: Path, out: Path) -> None:
        pseudo = ("-p", "dev d 755 0 0", "-p", "dev/console c 600 0 0 5 1")
        run("mksquashfs", root, out, "-comp", comp, "-all-root", "-noappend", "-quiet", *pseudo, *extra)

    return build


BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    "squashfs-gzip": _squashfs("gzip"),
    "squashfs-xz": _squashfs("xz"),
    "squashfs-lzo": _squashfs("lzo"),
    "squashfs-lz4": _squashfs("lz4"),
    "squashfs-zstd": _squashfs("zstd"),
    "squashfs-xz-4k": _squashfs("xz", "-b", "4096"),  # data blocks smaller than the 8 KiB metadata blocks
    "squashfs-lzma": _squashfs("lzma"),  # the LZMA-alone framing (13-byte header) of squashfs-tools
    "jffs2-le": lambda root, out: run("mkfs.jffs2", "-r", root, "-o", out, "-l", "-e", "64KiB", "-U"),
    "jffs2-be": lambda root, out: run("mkfs.jffs2", "-r", root, "-o", out, "-b", "-e", "64KiB", "-U"),
    "ubi": _ubi,
    "ubifs": lambda root, out: run("mkfs.ubifs", "-r", root, "-m", "2048", "-e", "126976", "-c", "64", "-o", out),
    "ext2": lambda root, out: run("genext2fs", "-d", root, "-b", "4096", "-U", out),
    "ext3": lambda root, out: run("mke2fs", "-q", "-t", "ext3", "-E", "root_owner=0:0", "-d", root, out, "8M"),
    "ext4": lambda root, out: run("mke2fs", "-q", "-t", "ext4", "-E", "root_owner=0:0", "-d", root, out, "8M"),
    "cramfs": lambda root, out: run("mkfs.cramfs", "-N", "little", root, out),
    "cramfs-be": lambda root, out: run("mkfs.cramfs", "-N", "big", root, out),
    "romfs": lambda root, out: run("genromfs", "-d", root, "-f", out),
    "cpio-newc": _archive("newc"),
    "cpio-odc": _archive("odc"),
    "tar": _archive("tar"),
    "zip": _archive("zip"),
    "7z": _archive("7z"),
    "tar.gz": _compressed(_archive("tar"), "gzip"),
    "tar.xz": _compressed(_archive("tar"), "xz"),
    "tar.lzma": _compressed(_archive("tar"), "lzma"),
    "tar.bz2": _compressed(_archive("tar"), "bzip2"),
    "tar.zst": _compressed(_archive("tar"), "zstd"),
    "tar.lz4": _compressed(_archive("tar"), "lz4"),
    "tar.lzo": _compressed(_archive("tar"), "lzop"),
}


def build(name: str, root: Path, workdir: Path) -> Path:
    out = workdir / f"{name}.img"
    if not out.exists():
        BUILDERS[name](root, out)
    return out


def uimage(payload: Path, out: Path, comp: str = "none") -> Path:
    run(
        "mkimage",
        "-A",
        "arm",
        "-O",
        "linux",
        "-T",
        "kernel",
        "-C",
        comp,
        "-a",
        "0x80008000",
        "-e",
        "0x80008000",
        "-n",
        "Linux-6.1",
        "-d",
        payload,
        out,
    )
    return out


def yaffs2(root: Path, out: Path, page: int = 2048, spare: int = 64) -> None:
    """A yaffs2 image as mkyaffs2image lays it out (no Debian tool writes one; unyaffs reads it back).

    Each object: a header chunk (``struct yaffs_obj_hdr``), then its data chunks; packed tags2 at the
    start of the spare area; one sequence number, as in a freshly written image.
    """
    seq = 0x1000
    ids = {root: 1}
    chunks = []

    def chunk(data: bytes, obj_id: int, chunk_id: int, n_bytes: int) -> bytes:
        tags = struct.pack("<4I", seq, obj_id, chunk_id, n_bytes)
        marker = b"\xff\xff" if spare >= 18 else b""  # the good-block marker, where the spare has room
        return data.ljust(page, b"\xff") + (marker + tags).ljust(spare, b"\xff")

    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).parts):
        oid = ids[path] = len(ids) + 256
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            kind, alias, size = 2, str(path.readlink()).encode(), 0
        elif stat.S_ISDIR(st.st_mode):
            kind, alias, size = 3, b"", 0
        else:
            kind, alias, size = 1, b"", st.st_size
        header = struct.pack(
            "<IIH256sHIIIIIIIi160sI6IIII",
            kind, ids[path.parent], 0xFFFF, path.name.encode(), 0xFFFF,
            st.st_mode, 0, 0, int(st.st_atime), int(st.st_mtime), int(st.st_ctime), size, -1, alias, 0,
            *([0] * 6), 0, 0, 0,
        )  # fmt: skip
        chunks.append(chunk(header, oid, 0, 0xFFFF))  # mkyaffs2image's byte count of a header
        if kind == 1:
            content = path.read_bytes()
            for index, start in enumerate(range(0, len(content), page), 1):
                piece = content[start : start + page]
                chunks.append(chunk(piece, oid, index, len(piece)))
    out.write_bytes(b"".join(chunks))


BUILDERS["yaffs2"] = yaffs2


def _bitfields(fields: list[tuple[int, int]], big: bool) -> bytes:
    """(value, width in bits) packed as squashfs 2.x/3.x packs its headers (``squashfs_compat.h``):
    little-endian from the lowest bit up, big-endian from the highest bit down."""
    total = sum(width for _, width in fields)
    value, pos = 0, 0
    for field, width in fields:
        assert 0 <= field < 1 << width, (field, width)
        value |= field << (total - pos - width if big else pos)
        pos += width
    return value.to_bytes(total // 8, "big" if big else "little")


class _Metadata:
    """A squashfs 2.x/3.x metadata table written as mksquashfs writes it: 8 KiB blocks, each compressed
    as it fills, so a reference (block's offset in the table, offset in the block) is known at once."""

    def __init__(self, compress: Callable[[bytes], bytes], big: bool, check: bool) -> None:
        self.compress, self.big, self.check = compress, big, check
        self.out, self.buf = bytearray(), bytearray()

    def ref(self) -> tuple[int, int]:
        return len(self.out), len(self.buf)

    def write(self, data: bytes) -> None:
        self.buf.extend(data)
        while len(self.buf) >= 8192:
            self._flush(bytes(self.buf[:8192]))
            del self.buf[:8192]

    def _flush(self, block: bytes) -> None:
        packed = self.compress(block)
        word = len(packed) if len(packed) < len(block) else len(block) | 0x8000
        self.out.extend(struct.pack(">H" if self.big else "<H", word) + (b"\xff" if self.check else b""))
        self.out.extend(packed if len(packed) < len(block) else block)

    def close(self) -> bytes:
        if self.buf:
            self._flush(bytes(self.buf))
            self.buf.clear()
        return bytes(self.out)


def _squashfs_old(
    major: int,
    *,
    big: bool = False,
    comp: str = "none",
    fragments: bool = False,
    long: bool = False,
    check: bool = False,
    block: int = 1 << 16,
) -> Callable[[Path, Path], None]:
    """A squashfs 2.x or 3.x writer, laid out as squashfs-tools 2.x/3.x wrote it (``squashfs_compat.h``).

    No Debian tool writes these layouts any more; Debian's ``unsquashfs`` still reads them with zlib.
    - ``comp``: ``none``, ``gzip`` (zlib), ``lzma`` (LZMA-alone blocks, 13-byte header) or ``bcm`` (zlib
      and LZMA blocks in turn, the LZMA ones framed as Broadcom SDKs' ``sqlzma.c`` frames them: 5
      properties bytes, no size; readers tell the two apart by the first byte). A block that does not
      shrink is stored as is; in 3.x a block of zeros is stored as a sparse block (size word 0).
    - ``fragments``: the files smaller than a block, and the tails of the others, go into shared
      fragment blocks (mksquashfs ``-always-use-fragments``).
    - ``long``: the long directory and file inodes (3.x writes them for large directories and files, or
      files with several links).
    - ``check``: the check-data flag (a marker byte after each metadata block's length).
    - ``block``: the block size (4 KiB makes many fragment blocks from few files).
    Like the other squashfs builders' pseudo file, a /dev/console device is added when the tree has no /dev.
    """
    order = ">" if big else "<"
    sb_size = 119 if major == 3 else 63

    blocks = itertools.count()

    def compress(raw: bytes) -> bytes:
        if comp == "gzip" or (comp == "bcm" and next(blocks) % 2):
            return zlib.compress(raw, 9)
        if comp == "lzma":
            return lzma.compress(raw, format=lzma.FORMAT_ALONE)
        if comp == "bcm":  # Broadcom's sqlzma.c: the 5 properties bytes, then the raw LZMA stream
            filters = [{"id": lzma.FILTER_LZMA1, "lc": 3, "lp": 0, "pb": 2, "dict_size": 1 << 16}]
            return b"\x5d" + (1 << 16).to_bytes(4, "little") + lzma.compress(raw, lzma.FORMAT_RAW, filters=filters)
        return raw

    def build(root: Path, out: Path) -> None:
        pseudo = not (root / "dev").exists()  # the /dev and /dev/console the other builders add, unless /dev exists
        data = bytearray()
        inodes, dirs = _Metadata(compress, big, check), _Metadata(compress, big, check)
        frag_buf = bytearray()
        frag_entries: list[tuple[int, int]] = []
        uids: list[int] = []
        gids: list[int] = []
        numbers: dict[str, int] = {}
        order_: list[str] = []  # children before their directory, as mksquashfs numbers them

        def kids(rel: str) -> list[str]:
            if rel == "dev" and pseudo:
                return ["dev/console"]
            names = sorted(p.name for p in (root / rel).iterdir()) + ([] if rel or not pseudo else ["dev"])
            return [f"{rel}/{n}".lstrip("/") for n in sorted(names)]

        def is_dir(rel: str) -> bool:
            return (
                rel == ""
                or (rel == "dev" and pseudo)
                or ((rel != "dev/console" or not pseudo) and (root / rel).is_dir() and not (root / rel).is_symlink())
            )

        def number(rel: str) -> None:
            for child in kids(rel) if is_dir(rel) else []:
                number(child)
            order_.append(rel)
            numbers[rel] = len(order_)

        def owner(table: list[int], value: int) -> int:
            if value not in table:
                table.append(value)
            return table.index(value)

        def stored(raw: bytes, word_bit: int) -> tuple[bytes, int]:  # (bytes written, size word)
            packed = compress(raw)
            return (packed, len(packed)) if len(packed) < len(raw) else (raw, len(raw) | word_bit)

        def flush_fragments() -> None:
            if frag_buf:
                packed, word = stored(bytes(frag_buf), 1 << 24)
                frag_entries.append((sb_size + len(data), word))
                data.extend(packed)
                frag_buf.clear()

        number("")
        refs: dict[str, tuple[int, int]] = {}
        kinds: dict[str, int] = {}
        for rel in order_:
            st = (root / rel).lstat() if not pseudo or rel not in {"dev", "dev/console"} else None
            mode = stat.S_IMODE(st.st_mode) if st else (0o755 if rel == "dev" else 0o600)
            uid, gid = (st.st_uid, st.st_gid) if st else (0, 0)

            def base(
                kind: int, rel: str = rel, mode: int = mode, uid: int = uid, gid: int = gid
            ) -> list[tuple[int, int]]:
                # a group equal to the owner is written as SQUASHFS_GUIDS (255), "the group is the owner"
                group = 255 if gid == uid else owner(gids, gid)
                head = [(kind, 4), (mode, 12), (owner(uids, uid), 8), (group, 8)]
                return head + ([(0, 32), (numbers[rel], 32)] if major == 3 else [])

            refs[rel] = inodes.ref()
            link_count = [(1, 32)] if major == 3 else []  # 3.x device and symlink inodes have nlink
            if is_dir(rel):
                listing, entries = dirs.ref(), kids(rel)
                size = 0
                i = 0
                while i < len(entries):  # a header per run of at most 256 entries whose inodes share a block
                    first = entries[i]
                    run_ = [first]
                    for e in entries[i + 1 : i + 256]:
                        if refs[e][0] != refs[first][0] or abs(numbers[e] - numbers[first]) > 0x7FFF:
                            break
                        run_.append(e)
                    header = [(len(run_) - 1, 8), (refs[first][0], 32 if major == 3 else 24)]
                    piece = bytearray(_bitfields(header + ([(numbers[first], 32)] if major == 3 else []), big))
                    for e in run_:
                        name = e.rsplit("/", 1)[-1].encode()
                        entry = [(refs[e][1], 13), (kinds[e], 3), (len(name) - 1, 8)]
                        if major == 3:
                            entry.append(((numbers[e] - numbers[first]) & 0xFFFF, 16))
                        piece.extend(_bitfields(entry, big) + name)
                    dirs.write(bytes(piece))
                    size += len(piece)
                    i += len(run_)
                size += 3 if major == 3 else 0  # 3.x counts . and .. as 3 bytes
                parent = numbers[rel.rpartition("/")[0]] if rel else len(order_) + 1
                kinds[rel] = 1
                if major == 3 and long:
                    fields = [(2, 32), (size, 27), (listing[1], 13), (listing[0], 32), (0, 16), (parent, 32)]
                    inodes.write(_bitfields([*base(8), *fields], big))
                elif major == 3:
                    fields = [(2, 32), (size, 19), (listing[1], 13), (listing[0], 32), (parent, 32)]
                    inodes.write(_bitfields([*base(1), *fields], big))
                elif long:
                    fields = [(size, 27), (listing[1], 13), (0, 32), (listing[0], 24), (0, 16)]
                    inodes.write(_bitfields([*base(8), *fields], big))
                else:
                    inodes.write(_bitfields([*base(1), (size, 19), (listing[1], 13), (0, 32), (listing[0], 24)], big))
            elif st is None:  # the pseudo /dev/console
                kinds[rel] = 5
                inodes.write(_bitfields([*base(5), *link_count, ((5 << 8) | 1, 16)], big))
            elif st is not None and stat.S_ISLNK(st.st_mode):
                target = str((root / rel).readlink()).encode()
                kinds[rel] = 3
                inodes.write(_bitfields([*base(3), *link_count, (len(target), 16)], big) + target)
            else:
                content = (root / rel).read_bytes()
                start = sb_size + len(data)
                fragment, frag_offset, words = 0xFFFFFFFF, 0, []
                whole = len(content) - len(content) % block if fragments else len(content)
                for at in range(0, whole, block):
                    part = content[at : at + block]
                    if major == 3 and part == bytes(block):  # a sparse block: size word 0, nothing stored
                        words.append(0)
                        continue
                    packed, word = stored(part, 1 << 24)
                    data.extend(packed)
                    words.append(word)
                tail = content[whole:]
                if tail:  # with fragments, every file's tail goes to one (mksquashfs -always-use-fragments)
                    if len(frag_buf) + len(tail) > block:
                        flush_fragments()
                    fragment, frag_offset = len(frag_entries), len(frag_buf)
                    frag_buf.extend(tail)
                kinds[rel] = 2
                if major == 3 and long:
                    fields = [(1, 32), (start, 64), (fragment, 32), (frag_offset, 32), (len(content), 64)]
                    head = _bitfields([*base(9), *fields], big)
                elif major == 3:
                    head = _bitfields(
                        [*base(2), (start, 64), (fragment, 32), (frag_offset, 32), (len(content), 32)], big
                    )
                else:
                    fields = [(0, 32), (start, 32), (fragment, 32), (frag_offset, 32), (len(content), 32)]
                    head = _bitfields([*base(2), *fields], big)
                inodes.write(head + struct.pack(f"{order}{len(words)}I", *words))
        flush_fragments()

        itab = sb_size + len(data)
        inode_table = inodes.close()
        dtab = itab + len(inode_table)
        dir_table = dirs.close()
        # fragment entries (16 bytes in 3.x, 8 in 2.x) in metadata blocks, then the index of those blocks
        frags = _Metadata(compress, big, check)
        for start, word in frag_entries:
            frags.write(
                struct.pack(f"{order}QII", start, word, 0) if major == 3 else struct.pack(f"{order}II", start, word)
            )
        frag_table = frags.close()
        frag_at = dtab + len(dir_table)
        per_block = 8192 // (16 if major == 3 else 8)
        pointers = [frag_at + i for i in _block_offsets(frag_table, check, big)][: -(-len(frag_entries) // per_block)]
        index = struct.pack(f"{order}{len(pointers)}{'Q' if major == 3 else 'I'}", *pointers)
        ftab = frag_at + len(frag_table)
        uid_at = ftab + len(index)
        gid_at = uid_at + 4 * len(uids) if gids else 0  # unsquashfs wants 0 when there is no group table
        end = uid_at + 4 * len(uids) + 4 * len(gids)
        # squashfs_fs.h's flag bits: 0x0B inodes, data and fragments stored as is; 0x10 no fragments; 0x04 check data
        flags = (0x0B if comp == "none" else 0) | (0 if fragments else 0x10) | (4 if check else 0)
        root_ref = refs[""][0] << 16 | refs[""][1]
        sb = struct.pack(
            f"{order}IIIIIIIHHHHBBBIQIIIQQQQQQq",
            0x73717368, len(order_), end, uid_at, gid_at, itab, dtab, major, 1, block & 0xFFFF, block.bit_length() - 1,
            flags, len(uids), len(gids), 0,
            root_ref, block, len(frag_entries), ftab, end, uid_at, gid_at, itab, dtab, ftab, -1,
        )[:sb_size]  # fmt: skip
        tables = inode_table + dir_table + frag_table + index
        owners = struct.pack(f"{order}{len(uids)}I", *uids) + struct.pack(f"{order}{len(gids)}I", *gids)
        out.write_bytes(sb + data + tables + owners)

    return build


def _block_offsets(table: bytes, check: bool, big: bool) -> list[int]:
    """Where each metadata block of ``table`` starts in it."""
    starts, pos = [], 0
    while pos < len(table):
        starts.append(pos)
        word = int.from_bytes(table[pos : pos + 2], "big" if big else "little")
        pos += 2 + check + ((word & 0x7FFF) or 0x8000)
    return starts


OLD_SQUASHFS = {
    "squashfs3": _squashfs_old(3),
    "squashfs3-gzip": _squashfs_old(3, comp="gzip", fragments=True),
    "squashfs3-be": _squashfs_old(3, big=True, comp="gzip", fragments=True, long=True),
    "squashfs3-lzma": _squashfs_old(3, comp="lzma", fragments=True, long=True),
    "squashfs3-be-lzma": _squashfs_old(3, big=True, comp="lzma", fragments=True),
    "squashfs3-check": _squashfs_old(3, comp="gzip", fragments=True, check=True),
    "squashfs3-bcm": _squashfs_old(3, comp="bcm", fragments=True),
    "squashfs2": _squashfs_old(2, comp="gzip", fragments=True),
    "squashfs2-be": _squashfs_old(2, big=True, comp="gzip", fragments=True, long=True),
}
BUILDERS.update(OLD_SQUASHFS)
