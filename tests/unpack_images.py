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
