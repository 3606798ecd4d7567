"""Images built with Debian's own tools (squashfs-tools, mtd-utils, u-boot-tools, genext2fs ...)
from one small busybox root filesystem, for the unpacker's tests. Not a test module itself."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import stat
import struct
import subprocess
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


def _squashfs(comp: str) -> Callable[[Path, Path], None]:
    def build(root: Path, out: Path) -> None:
        pseudo = ("-p", "dev d 755 0 0", "-p", "dev/console c 600 0 0 5 1")
        run("mksquashfs", root, out, "-comp", comp, "-all-root", "-noappend", "-quiet", *pseudo)

    return build


BUILDERS: dict[str, Callable[[Path, Path], None]] = {
    "squashfs-gzip": _squashfs("gzip"),
    "squashfs-xz": _squashfs("xz"),
    "squashfs-lzo": _squashfs("lzo"),
    "squashfs-lz4": _squashfs("lz4"),
    "squashfs-zstd": _squashfs("zstd"),
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


def squashfs3(root: Path, out: Path) -> None:
    """A squashfs 3.1 image of ``root``, uncompressed, laid out as squashfs-tools 3.x wrote it
    (``squashfs_fs.h`` of 3.x: packed little-endian bit fields). No Debian tool writes 3.x any more;
    Debian's unsquashfs still reads it, and the unpacker reads it through unsquashfs. Like the other
    squashfs builders' pseudo file, a /dev/console device is added.
    """
    block, meta = 1 << 16, 8192
    data, inodes, dirs = bytearray(), bytearray(), bytearray()
    uids: list[int] = []
    gids: list[int] = []
    numbers: dict[str, int] = {}
    order: list[str] = []  # children before their directory, as mksquashfs numbers them

    def kids(rel: str) -> list[str]:
        if rel == "dev":
            return ["dev/console"]
        names = sorted(p.name for p in (root / rel).iterdir()) + ([] if rel else ["dev"])
        return [f"{rel}/{n}".lstrip("/") for n in sorted(names)]

    def is_dir(rel: str) -> bool:
        return rel in {"", "dev"} or (rel != "dev/console" and (root / rel).is_dir() and not (root / rel).is_symlink())

    def number(rel: str) -> None:
        for child in kids(rel) if is_dir(rel) else []:
            number(child)
        order.append(rel)
        numbers[rel] = len(order)

    def ref(pos: int) -> tuple[int, int]:  # (metadata block, as its offset in the table; offset in it)
        return pos // meta * (meta + 2), pos % meta

    def owner(table: list[int], value: int) -> int:
        if value not in table:
            table.append(value)
        return table.index(value)

    number("")
    refs: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for rel in order:
        st = (root / rel).lstat() if rel not in {"dev", "dev/console"} else None
        mode = stat.S_IMODE(st.st_mode) if st else (0o755 if rel == "dev" else 0o600)
        uid, gid = (st.st_uid, st.st_gid) if st else (0, 0)
        head = (mode << 4) | (owner(uids, uid) << 16) | (owner(gids, gid) << 24)
        refs[rel] = len(inodes)
        if is_dir(rel):
            listing, entries = len(dirs), kids(rel)
            i = 0
            while i < len(entries):  # a header per run of at most 256 entries whose inodes share a block
                start = ref(refs[entries[i]])[0]
                run_ = [entries[i]]
                for e in entries[i + 1 : i + 256]:
                    if ref(refs[e])[0] != start or abs(numbers[e] - numbers[run_[0]]) > 0x7FFF:
                        break
                    run_.append(e)
                dirs.extend(struct.pack("<BII", len(run_) - 1, start, numbers[run_[0]]))
                for e in run_:
                    name = e.rsplit("/", 1)[-1].encode()
                    word = ref(refs[e])[1] | (kinds[e] << 13)
                    dirs.extend(struct.pack("<HBh", word, len(name) - 1, numbers[e] - numbers[run_[0]]) + name)
                i += len(run_)
            start, offset = ref(listing)
            parent = numbers[rel.rpartition("/")[0]] if rel else len(order) + 1
            size = len(dirs) - listing + 3  # squashfs counts . and .. as 3 bytes
            kinds[rel] = 1
            inodes.extend(struct.pack("<IIIIIII", 1 | head, 0, numbers[rel], 2, size | (offset << 19), start, parent))
        elif rel == "dev/console":
            kinds[rel] = 5
            inodes.extend(struct.pack("<IIIIH", 5 | head, 0, numbers[rel], 1, (5 << 8) | 1))
        elif st is not None and stat.S_ISLNK(st.st_mode):
            target = str((root / rel).readlink()).encode()
            kinds[rel] = 3
            inodes.extend(struct.pack("<IIIIH", 3 | head, 0, numbers[rel], 1, len(target)) + target)
        else:
            content = (root / rel).read_bytes()
            sizes = [len(content[i : i + block]) | (1 << 24) for i in range(0, len(content), block)]  # stored as is
            kinds[rel] = 2
            at = 119 + len(data)  # the data follows the 119-byte superblock
            data.extend(content)
            inodes.extend(struct.pack("<IIIQIII", 2 | head, 0, numbers[rel], at, 0xFFFFFFFF, 0, len(content)))
            inodes.extend(struct.pack(f"<{len(sizes)}I", *sizes))

    def table(stream: bytearray) -> bytes:  # uncompressed metadata blocks, each behind its 2-byte header
        return b"".join(
            struct.pack("<H", len(stream[i : i + meta]) | 0x8000) + stream[i : i + meta]
            for i in range(0, len(stream), meta)
        )

    itab = 119 + len(data)
    inode_table = table(inodes)
    dtab = itab + len(inode_table)
    dir_table = table(dirs)
    uid_at = ftab = dtab + len(dir_table)  # no fragments: an empty fragment table
    gid_at = uid_at + 4 * len(uids)
    end = gid_at + 4 * len(gids)
    sb = struct.pack(
        "<IIIIIIIHHHHBBBIQIIIQQQQQQq",
        0x73717368, len(order), end, uid_at, gid_at, itab, dtab, 3, 1, 0, 16,
        0x1B, len(uids), len(gids), 0,  # no inode, data or fragment compression; no fragments
        ref(refs[""])[0] << 16 | ref(refs[""])[1], block, 0, ftab, end, uid_at, gid_at, itab, dtab, ftab, -1,
    )  # fmt: skip
    assert len(sb) == 119
    out.write_bytes(
        sb
        + data
        + inode_table
        + dir_table
        + struct.pack(f"<{len(uids)}I", *uids)
        + struct.pack(f"<{len(gids)}I", *gids)
    )


BUILDERS["squashfs3"] = squashfs3
