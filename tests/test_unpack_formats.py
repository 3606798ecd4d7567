"""Every format the unpacker reads, on images built by Debian's own tools from one root filesystem:
the tree read back must equal the tree that went in (paths, types, modes, sizes, contents, links)."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import stat
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from nospy.firmware.tree import DirectoryTree, EntryType, FileTree
from nospy.firmware.unpack import PREFIX, Limits, open_image
from nospy.firmware.unpack.base import Context, FormatError, mode_type
from nospy.firmware.unpack.handlers.filesystems import _cramfs_to_le
from nospy.firmware.unpack.handlers.squashfs import Squashfs4
from nospy.firmware.unpack.handlers.squashfs_legacy import _LINE, _mode
from nospy.firmware.unpack.limits import Budget
from unpack_images import BUILDERS, OLD_SQUASHFS, ROOT_FILES, _squashfs_old, build, make_rootfs, run, tool, uimage

Summary = dict[str, tuple[str, int | None, int, str | None, str | None]]

# formats that do not store everything: what they drop is left out of the comparison
_NO_MODES = {"romfs"}  # romfs keeps only an executable bit
_EXTRA = {"ext2": {"/lost+found"}, "ext3": {"/lost+found"}, "ext4": {"/lost+found"}}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def rootfs(workdir: Path) -> Path:
    return make_rootfs(workdir / "rootfs")


def summary(tree: FileTree, *, modes: bool = True, under: str = "/") -> Summary:
    out: Summary = {}
    for e in tree.entries():
        if not (e.path + "/").startswith(under.rstrip("/") + "/") or e.path == under:
            continue
        path = "/" + e.path[len(under) :].lstrip("/")
        digest = tree.sha256(e.path) if e.type is EntryType.FILE else None
        size = e.size if e.type is not EntryType.DIR else 0
        out[path] = (e.type.value, e.mode if modes else None, size, digest, e.link)
    return out


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_format_round_trip(name: str, rootfs: Path, workdir: Path) -> None:
    image = build(name, rootfs, workdir)
    tree = open_image(image)
    assert tree.issues == []
    assert tree.root_chain is not None and tree.root_chain.startswith(image.name + "!")
    if name.startswith("ext"):
        assert tree.root_chain == f"{image.name}!{name}@0x0"  # the label says which ext it is
    got = summary(tree, modes=name not in _NO_MODES)
    for extra in _EXTRA.get(name, set()):
        assert got.pop(extra)[0] == "dir"
    if name.startswith("squashfs"):
        assert got.pop("/dev/console") == ("chardev", 0o600, 0, None, None)  # a device node, from a pseudo file
        assert got.pop("/dev")[0] == "dir"
    assert got == summary(DirectoryTree(rootfs), modes=name not in _NO_MODES)
    assert tree.read("/bin/sh", 4) == b"\x7fELF"  # through the symlink, inside the tree
    shadow = tree.get("/etc/shadow")
    assert shadow is not None and shadow.location == f"{tree.root_chain}!/etc/shadow"


def _as_unsquashfs_reads_it(image: Path, out: Path) -> None:
    """nospy reads ``image`` as Debian's unsquashfs lists and extracts it: paths, types, modes, owners,
    sizes, link targets and contents."""
    listing = subprocess.run(
        [tool("unsquashfs"), "-lln", "-d", "", str(image)], capture_output=True, text=True, check=True
    ).stdout
    theirs = {}
    for line in listing.splitlines():
        m = _LINE.match(line)
        if m:
            path, link = m["path"], None
            if m["mode"][0] == "l":
                path, link = path.split(" -> ", 1)
            mode = _mode(m["mode"])
            kind = mode_type(mode)
            size = int(m["size"].replace(",", "")) if kind is EntryType.FILE else None
            theirs[path or "/"] = (kind.value, stat.S_IMODE(mode), int(m["uid"]), int(m["gid"]), size, link)
    subprocess.run(
        [tool("unsquashfs"), "-no-xattrs", "-f", "-d", str(out), str(image)], capture_output=True, check=True
    )
    tree = open_image(image)
    assert tree.issues == []
    ours = {
        e.path: (e.type.value, e.mode, e.uid, e.gid, e.size if e.type is EntryType.FILE else None, e.link)
        for e in tree.entries()
    }
    assert ours == theirs
    for e in tree.files():
        assert tree.sha256(e.path) == hashlib.sha256((out / e.path.lstrip("/")).read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(n for n in OLD_SQUASHFS if "lzma" not in n and "bcm" not in n))
def test_old_squashfs_as_unsquashfs_reads_it(name: str, rootfs: Path, workdir: Path) -> None:
    """The squashfs 2.x/3.x images the tests write (no Debian tool writes them) are read alike by Debian's
    unsquashfs (zlib only): the in-process reader is held to an independent reader, not only to its writer."""
    _as_unsquashfs_reads_it(build(name, rootfs, workdir), workdir / f"{name}.unsquashed")


@pytest.fixture(scope="module")
def bigroot(rootfs: Path, workdir: Path) -> Path:
    """The root filesystem and 3,000 more files in one directory: inode and directory tables of many
    metadata blocks, over 1,024 fragment blocks at a 4 KiB block size (a fragment index of several
    blocks in 2.x and 3.x), owners of many ids (as root), and a file with a block of zeros."""
    root = workdir / "bigroot"
    shutil.copytree(rootfs, root, symlinks=True)
    (root / "many").mkdir()
    for i in range(3000):
        path = root / "many" / f"file-{i:05d}-{'x' * (i % 23)}"
        path.write_bytes(bytes([i % 251]) * (i % 800 * 4))
        if os.geteuid() == 0:
            os.chown(path, i % 7, i % 5 * 100, follow_symlinks=False)  # some groups equal to their owner
    (root / "sparse").write_bytes(b"head".ljust(4096, b"\0") + bytes(8192) + b"tail")
    return root


_BIG = {
    "squashfs3-gzip": _squashfs_old(3, comp="gzip", fragments=True, block=4096),
    "squashfs3-be": _squashfs_old(3, big=True, comp="gzip", fragments=True, long=True, check=True, block=4096),
    "squashfs2-gzip": _squashfs_old(2, comp="gzip", fragments=True, block=4096),
    "squashfs2-be": _squashfs_old(2, big=True, comp="gzip", fragments=True, long=True, block=4096),
    "squashfs3-bcm": _squashfs_old(3, comp="bcm", fragments=True, block=4096),
    "squashfs3-be-lzma": _squashfs_old(3, big=True, comp="lzma", fragments=True, block=4096),
}


@pytest.mark.parametrize("name", sorted(_BIG))
def test_old_squashfs_with_large_tables(name: str, bigroot: Path, workdir: Path) -> None:
    """Reads that end exactly at a metadata block's end, then go on in the next block; fragment indexes
    of several blocks; many owners; sparse blocks. LZMA images, which unsquashfs cannot read, must
    equal the tree that went in."""
    image = workdir / f"big-{name}.img"
    _BIG[name](bigroot, image)
    if "lzma" in name or "bcm" in name:
        tree = open_image(image)
        assert tree.issues == []
        got = summary(tree)
        assert got.pop("/dev/console")[0] == "chardev" and got.pop("/dev")[0] == "dir"
        assert got == summary(DirectoryTree(bigroot))
    else:
        _as_unsquashfs_reads_it(image, workdir / f"big-{name}.unsquashed")


def test_old_squashfs_file_above_the_byte_limit(rootfs: Path, workdir: Path) -> None:
    """A file larger than the unpacked-bytes limit is not opened (its block list is not even built: a
    sparse file can claim terabytes); the listing keeps it, and the rest is read."""
    image = build("squashfs3-gzip", rootfs, workdir)
    limits = Limits(max_bytes=1 << 20)
    tree = open_image(image, limits)
    assert tree.issues == []
    busybox = tree.get("/bin/busybox")
    assert busybox is not None and busybox.size > 1 << 20
    assert tree.read("/etc/passwd") == ROOT_FILES["etc/passwd"]
    ctx = Context(Budget(limits), image.name)
    chunk = Squashfs4().identify(memoryview(image.read_bytes()), 0, ctx)
    assert chunk is not None and chunk.filesystem is not None
    handles = {path: ref for path, _, ref in chunk.filesystem.walk(ctx)}
    with pytest.raises(FormatError, match="above the unpacked-bytes limit"):
        chunk.filesystem.open_file(handles["/bin/busybox"])
    assert chunk.filesystem.open_file(handles["/etc/passwd"]).read() == ROOT_FILES["etc/passwd"]


@pytest.mark.parametrize("name", ["squashfs-xz", "jffs2-be", "ubi"])
def test_owners_as_stored(name: str, rootfs: Path, workdir: Path) -> None:
    tree = open_image(build(name, rootfs, workdir))
    assert {(e.uid, e.gid) for e in tree.entries()} == {(0, 0)}


def test_uimage_kernel_and_squashfs_rootfs(rootfs: Path, workdir: Path) -> None:
    """The common router layout: a uImage (LZMA kernel) followed by a squashfs root filesystem."""
    kernel = workdir / "Image"
    kernel.write_bytes(b"ARM Linux kernel\0" + bytes(range(256)) * 600)
    packed = workdir / "Image.lzma"
    packed.write_bytes(lzma.compress(kernel.read_bytes(), format=lzma.FORMAT_ALONE))
    ui = uimage(packed, workdir / "uImage", "lzma")
    firmware = workdir / "firmware.bin"
    squash = build("squashfs-xz", rootfs, workdir)
    firmware.write_bytes(ui.read_bytes() + b"\xff" * (0x10000 - ui.stat().st_size % 0x10000) + squash.read_bytes())
    tree = open_image(firmware)
    assert tree.issues == []
    start = firmware.stat().st_size - squash.stat().st_size
    assert tree.root_chain == f"firmware.bin!squashfs@{start:#x}"
    assert tree.read(f"{PREFIX}/uimage@0x0/lzma@0x40/data") == kernel.read_bytes()
    assert summary(tree, under="/")["/etc/passwd"][3] == summary(DirectoryTree(rootfs))["/etc/passwd"][3]


def test_nested_containers(rootfs: Path, workdir: Path) -> None:
    """A uImage holding a gzip'd cpio initramfs holding a tar.xz holding a squashfs: chains name each hop."""
    inner = workdir / "inner"
    (inner / "opt").mkdir(parents=True)
    (inner / "opt" / "rootfs.sqfs").write_bytes(build("squashfs-gzip", rootfs, workdir).read_bytes())
    tar_xz = workdir / "nested.tar.xz"
    run("tar", "-cJf", tar_xz, "-C", inner, "opt")
    outer = workdir / "outer"
    (outer / "boot").mkdir(parents=True)
    (outer / "boot" / "payload.tar.xz").write_bytes(tar_xz.read_bytes())
    cpio = workdir / "initramfs.cpio"
    BUILDERS["cpio-newc"](outer, cpio)
    gz = workdir / "initramfs.cpio.gz"
    gz.write_bytes(zlib.compress(cpio.read_bytes(), wbits=31))
    tree = open_image(uimage(gz, workdir / "nested.uimage"))
    assert tree.issues == []
    # files named as images or archives are unpacked in turn, their path in the chain; the squashfs
    # five containers down looks most like a device root (/etc, /bin, /sbin/init ...), so it is the root
    cpio_chain = "nested.uimage!uimage@0x0!gzip@0x40!cpio@0x0"
    assert tree.root_chain == f"{cpio_chain}!/boot/payload.tar.xz!xz@0x0!tar@0x0!/opt/rootfs.sqfs!squashfs@0x0"
    passwd = tree.get("/etc/passwd")
    assert passwd is not None and passwd.location == f"{tree.root_chain}!/etc/passwd"
    assert tree.read("/etc/passwd") == (rootfs / "etc" / "passwd").read_bytes()
    # the cpio and the tar are under the prefix, named by their chains
    assert tree.get("/@image/uimage@0x0/gzip@0x40/cpio@0x0/boot/payload.tar.xz") is not None
    tar = "/@image/uimage@0x0/gzip@0x40/cpio@0x0/boot/payload.tar.xz/xz@0x0/tar@0x0"
    assert tree.get(f"{tar}/opt/rootfs.sqfs") is not None


def test_trx_with_kernel_and_rootfs(rootfs: Path, workdir: Path) -> None:
    """Broadcom TRX v1 (trx.c): 28-byte header, partitions at the offsets it lists."""
    kernel = zlib.compress(b"kernel" * 1000, wbits=31)
    squash = build("squashfs-xz", rootfs, workdir).read_bytes()
    rootfs_at = (28 + len(kernel) + 0xFFF) & ~0xFFF
    body = kernel + b"\0" * (rootfs_at - 28 - len(kernel)) + squash
    header = struct.pack("<4sIIHH3I", b"HDR0", 28 + len(body), 0, 0, 1, 28, rootfs_at, 0)
    image = workdir / "trx.bin"
    image.write_bytes(header + body)
    tree = open_image(image)
    assert tree.issues == []
    assert tree.root_chain == f"trx.bin!trx@0x0!part1!squashfs@{rootfs_at:#x}"
    assert tree.read(f"{PREFIX}/trx@0x0/part0/gzip@0x1c/data") == b"kernel" * 1000


def test_tplink_header_with_kernel_and_rootfs(rootfs: Path, workdir: Path) -> None:
    """TP-Link v1 (mktplinkfw.c): a 512-byte big-endian header naming the kernel and the root filesystem."""
    kernel = zlib.compress(b"kernel" * 1000, wbits=31)
    squash = build("squashfs-xz", rootfs, workdir).read_bytes()
    header = struct.pack(">I24s36sII", 1, b"TP-LINK Technologies", b"ver. 1.0", 0x07410001, 1).ljust(0x74, b"\0")
    total = 512 + len(kernel) + len(squash)
    header += struct.pack(">9I", 0, 0, total, 512, len(kernel), 512 + len(kernel), len(squash), 0, 0)
    image = workdir / "tplink.bin"
    image.write_bytes(header.ljust(512, b"\0") + kernel + squash)
    tree = open_image(image)
    assert tree.issues == []
    assert tree.root_chain == f"tplink.bin!tplink@0x0!rootfs!squashfs@{512 + len(kernel):#x}"
    assert tree.read(f"{PREFIX}/tplink@0x0/kernel/gzip@0x200/data") == b"kernel" * 1000
    assert tree.read("/etc/shadow") == (rootfs / "etc/shadow").read_bytes()


def test_seama_and_chk_vendor_headers(rootfs: Path, workdir: Path) -> None:
    """D-Link SEAMA (seama.h) and Netgear CHK (mkchkimg.c) around a kernel and a squashfs."""
    squash = build("squashfs-xz", rootfs, workdir).read_bytes()
    kernel = zlib.compress(b"kernel" * 1000, wbits=31)
    meta = b"dev=/dev/mtdblock/2\0type=firmware\0"
    seama = struct.pack(">IHHI16s", 0x5EA3A417, 0, len(meta), len(squash), bytes(16)) + meta + squash
    image = workdir / "seama.bin"
    image.write_bytes(seama)
    tree = open_image(image)
    assert tree.issues == []
    assert tree.root_chain == f"seama.bin!seama@0x0!squashfs@{28 + len(meta):#x}"
    board = b"U12H139T00_NETGEAR"
    header = struct.pack(">II8s6I", 0x2A23245E, 40 + len(board), bytes(8), 0, 0, len(kernel), len(squash), 0, 0)
    image = workdir / "netgear.chk"
    image.write_bytes(header + board + kernel + squash)
    tree = open_image(image)
    assert tree.issues == []
    assert tree.root_chain == f"netgear.chk!chk@0x0!rootfs!squashfs@{40 + len(board) + len(kernel):#x}"
    assert tree.read(f"/@image/chk@0x0/kernel/gzip@{40 + len(board):#x}/data") == b"kernel" * 1000


def test_uimage_with_vendor_lzma_properties(workdir: Path) -> None:
    """A uImage whose LZMA kernel uses lc=1 lp=2 pb=2: decoded from the header's compression field."""
    kernel = b"ARM Linux kernel\0" + bytes(range(256)) * 400
    filters = [{"id": lzma.FILTER_LZMA1, "lc": 1, "lp": 2, "pb": 2, "dict_size": 1 << 20}]
    packed = workdir / "vendor.lzma"
    packed.write_bytes(lzma.compress(kernel, format=lzma.FORMAT_ALONE, filters=filters))
    assert packed.read_bytes()[0] != 0x5D
    tree = open_image(uimage(packed, workdir / "vendor.uimage", "lzma"))
    assert tree.issues == []
    assert tree.read(f"{PREFIX}/uimage@0x0/lzma/data") == kernel


def test_big_endian_cramfs_carved_at_an_offset(rootfs: Path, workdir: Path) -> None:
    """mkfs.cramfs -N big behind a vendor header and before padding: found, read, and its byte order named."""
    cramfs = build("cramfs-be", rootfs, workdir).read_bytes()
    assert cramfs[:4] == b"\x28\xcd\x3d\x45"  # the magic as a big-endian word
    image = workdir / "cramfs-be-carved.bin"
    image.write_bytes(b"VENDOR-HDR".ljust(0x300, b"\0") + cramfs + b"\xff" * 0x1000)
    tree = open_image(image)
    assert tree.issues == []
    assert tree.root_chain == "cramfs-be-carved.bin!cramfs-be@0x300"
    assert summary(tree) == summary(DirectoryTree(rootfs))
    assert tree.read("/etc/init.d/rcS") == (rootfs / "etc/init.d/rcS").read_bytes()


def test_big_endian_cramfs_swapped_as_cramfsswap_does(rootfs: Path, workdir: Path) -> None:
    """The in-memory byte swap equals Debian's cramfsswap, but for the CRC that cramfsswap recomputes."""
    be = build("cramfs-be", rootfs, workdir)
    swapped = workdir / "cramfs-swapped.img"
    run("cramfsswap", be, swapped)
    ours = _cramfs_to_le(memoryview(be.read_bytes()), Context(Budget(Limits()), "test"))
    theirs = swapped.read_bytes()
    assert len(ours) == len(theirs)
    assert ours[:32] + ours[36:] == theirs[:32] + theirs[36:]


def test_yaffs2_test_images_are_what_unyaffs_reads(rootfs: Path, workdir: Path) -> None:
    """No Debian tool writes yaffs2, so the tests write it; Debian's unyaffs must read it back the same."""
    image = build("yaffs2", rootfs, workdir)
    out = workdir / "unyaffs-out"
    run("unyaffs", image, out)
    assert summary(DirectoryTree(out)) == summary(DirectoryTree(rootfs))
    assert summary(open_image(image)) == summary(DirectoryTree(rootfs))


def _squashfs_of(directory: Path, out: Path) -> Path:
    run("mksquashfs", directory, out, "-comp", "xz", "-all-root", "-noappend", "-quiet")
    return out


def test_containers_found_by_content_whatever_their_names(rootfs: Path, workdir: Path) -> None:
    """A squashfs kept as data.dat and a gzip'd cpio as x.bin or ``blob``: unpacked by their magic."""
    outer = workdir / "outer-content"
    shutil.copytree(rootfs, outer, symlinks=True)
    inner = workdir / "inner-content"
    (inner / "opt").mkdir(parents=True)
    (inner / "opt" / "backdoor.sh").write_bytes(b"#!/bin/sh\ntelnetd -p 2323 -l /bin/sh\n")
    (outer / "var" / "lib").mkdir(parents=True)
    (outer / "var" / "lib" / "data.dat").write_bytes(_squashfs_of(inner, workdir / "inner.sqfs").read_bytes())
    cpio = workdir / "inner.cpio"
    BUILDERS["cpio-newc"](inner, cpio)
    (outer / "usr" / "lib").mkdir(parents=True)
    (outer / "usr" / "lib" / "x.bin").write_bytes(gzip.compress(cpio.read_bytes()))
    (outer / "usr" / "lib" / "blob").write_bytes(gzip.compress(cpio.read_bytes()))
    # a gzip'd document is a compressed stream of no container: not added to the tree
    (outer / "usr" / "share" / "doc").mkdir(parents=True)
    (outer / "usr" / "share" / "doc" / "changelog.gz").write_bytes(gzip.compress(b"* release 1.0\n" * 400))
    image = _squashfs_of(outer, workdir / "content.sqfs")
    tree = open_image(image)
    assert tree.issues == []
    assert tree.root_chain == "content.sqfs!squashfs@0x0"
    chains = {e.chain for e in tree.entries()}
    assert chains == {
        "content.sqfs",
        "content.sqfs!squashfs@0x0",
        "content.sqfs!squashfs@0x0!/var/lib/data.dat!squashfs@0x0",
        "content.sqfs!squashfs@0x0!/usr/lib/x.bin!gzip@0x0!cpio@0x0",
        "content.sqfs!squashfs@0x0!/usr/lib/blob!gzip@0x0!cpio@0x0",
    }
    for at in ("var/lib/data.dat/squashfs@0x0", "usr/lib/x.bin/gzip@0x0/cpio@0x0", "usr/lib/blob/gzip@0x0/cpio@0x0"):
        assert tree.read(f"{PREFIX}/squashfs@0x0/{at}/opt/backdoor.sh") == (inner / "opt" / "backdoor.sh").read_bytes()


def test_firmware_blobs_carved_other_files_not(rootfs: Path, workdir: Path) -> None:
    """A vendor blob under /lib/firmware and a large file of no known type are searched at every offset;
    a program is not, even with a filesystem's magic inside it."""
    outer = workdir / "outer-carve"
    shutil.copytree(rootfs, outer, symlinks=True)
    squash = build("squashfs-gzip", rootfs, workdir).read_bytes()
    (outer / "lib" / "firmware").mkdir(parents=True)
    (outer / "lib" / "firmware" / "dsp.fw").write_bytes(b"\x01DSPFW\x00\x00" + bytes(0x1F8) + squash)
    (outer / "opt").mkdir()
    (outer / "opt" / "update.pkg").write_bytes(b"\x00PKG" + bytes(range(256)) * 1100 + squash)
    elf = (rootfs / "bin" / "busybox").read_bytes()
    (outer / "opt" / "tool").write_bytes(elf + squash)
    image = _squashfs_of(outer, workdir / "carve.sqfs")
    tree = open_image(image)
    assert tree.issues == []
    pkg_at = 4 + 256 * 1100
    assert {e.chain for e in tree.entries()} == {
        "carve.sqfs",
        "carve.sqfs!squashfs@0x0",
        "carve.sqfs!squashfs@0x0!/lib/firmware/dsp.fw!squashfs@0x200",
        f"carve.sqfs!squashfs@0x0!/opt/update.pkg!squashfs@{pkg_at:#x}",
    }
    assert tree.root_chain == "carve.sqfs!squashfs@0x0"  # the outer tree keeps the device's place
    assert (
        tree.read(f"{PREFIX}/squashfs@0x0/lib/firmware/dsp.fw/squashfs@0x200/etc/shadow")
        == (rootfs / "etc/shadow").read_bytes()
    )
