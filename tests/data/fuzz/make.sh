#!/usr/bin/env bash
# Rebuilds the fuzz seeds of the unpacker's handlers (tests/test_fuzz.py) with Debian's own tools:
# one tiny image per format, from a root filesystem of one directory, one file and one symlink.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/etc"
printf 'root::0:0:root:/root:/bin/sh\n' > "$work/root/etc/passwd"
ln -s /etc/passwd "$work/root/etc/link"
mksquashfs "$work/root" squashfs.bin -comp gzip -all-root -noappend -quiet >/dev/null
mkfs.jffs2 -r "$work/root" -o jffs2.bin -l -e 8KiB -U
mkfs.jffs2 -r "$work/root" -o jffs2-be.bin -b -e 8KiB -U
mkfs.ubifs -r "$work/root" -m 512 -e 15360 -c 32 -l 2 -o ubifs.bin
printf '[r]\nmode=ubi\nimage=ubifs.bin\nvol_id=0\nvol_type=dynamic\nvol_name=rootfs\n' > "$work/ubi.ini"
ubinize -o ubi.bin -m 512 -p 16KiB "$work/ubi.ini" 2>/dev/null
genext2fs -d "$work/root" -b 64 -N 16 -U ext.bin
mkfs.cramfs -N little "$work/root" cramfs.bin >/dev/null
mkfs.cramfs -N big "$work/root" cramfs-be.bin >/dev/null
genromfs -d "$work/root" -f romfs.bin
(cd "$work/root" && find . | cpio -o -H newc --quiet) > cpio.bin
(cd "$work/root" && tar -cf - --numeric-owner .) > tar.bin
(cd "$work/root" && zip -qry "$OLDPWD/zip.bin" .)
(cd "$work/root" && 7zz a -t7z -snl "$OLDPWD/7z.bin" . >/dev/null)
gzip -9c < "$work/root/etc/passwd" > gzip.bin
xz -c < "$work/root/etc/passwd" > xz.bin
xz --format=lzma -c < tar.bin > lzma.bin
bzip2 -c < "$work/root/etc/passwd" > bzip2.bin
zstd -qc < "$work/root/etc/passwd" > zstd.bin
lz4 -qc < "$work/root/etc/passwd" > lz4.bin
lzop -c < tar.bin > lzo.bin
mkimage -A arm -O linux -T kernel -C gzip -a 0 -e 0 -n fuzz -d gzip.bin uimage.bin >/dev/null
cat > "$work/fit.its" <<ITS
/dts-v1/;
/ { description = "fuzz"; #address-cells = <1>;
    images { kernel { data = /incbin/("$PWD/gzip.bin"); type = "kernel"; arch = "arm"; os = "linux";
                      compression = "gzip"; load = <0>; entry = <0>; }; };
    configurations { default = "c"; c { kernel = "kernel"; }; }; };
ITS
mkimage -f "$work/fit.its" fit.bin >/dev/null
# TRX v1 and TP-Link v1 have no Debian tool: headers written field by field (trx.c, mktplinkfw.c)
python3 - <<'PY'
import struct
body = open("gzip.bin", "rb").read()
part1 = (28 + len(body) + 3) & ~3
payload = body + b"\0" * (part1 - 28 - len(body)) + open("squashfs.bin", "rb").read()
open("trx.bin", "wb").write(struct.pack("<4sIIHH3I", b"HDR0", 28 + len(payload), 0, 0, 1, 28, part1, 0) + payload)
kernel, rootfs = body, open("squashfs.bin", "rb").read()
head = struct.pack(">I24s36sII", 1, b"TP-LINK Technologies", b"ver. 1.0", 0x07410001, 1).ljust(0x74, b"\0")
head += struct.pack(">9I", 0, 0, 512 + len(kernel) + len(rootfs), 512, len(kernel), 512 + len(kernel), len(rootfs), 0, 0)
open("tplink.bin", "wb").write(head.ljust(512, b"\0") + kernel + rootfs)
# D-Link SEAMA (seama.h) and Netgear CHK (mkchkimg.c), no Debian tool either
meta = b"dev=/dev/mtdblock/2\0"
open("seama.bin", "wb").write(struct.pack(">IHHI16s", 0x5EA3A417, 0, len(meta), len(rootfs), bytes(16)) + meta + rootfs)
chk = struct.pack(">II8s6I", 0x2A23245E, 40 + 8, bytes(8), 0, 0, len(kernel), len(rootfs), 0, 0) + b"BOARD_ID"
open("chk.bin", "wb").write(chk + kernel + rootfs)
PY
# yaffs2 has no Debian tool that writes it: the tests' own writer (tests/unpack_images.py), 512+16 pages
../../../.venv/bin/python - "$work/root" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "../..")
from unpack_images import yaffs2
yaffs2(Path(sys.argv[1]), Path("yaffs2.bin"), page=512, spare=16)
PY
# squashfs 3.x (vendor LZMA, fragments, long inodes) and 2.x big-endian: no Debian tool writes them either
../../../.venv/bin/python - "$work/root" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "../..")
from unpack_images import OLD_SQUASHFS
OLD_SQUASHFS["squashfs3-lzma"](Path(sys.argv[1]), Path("squashfs3.bin"))
OLD_SQUASHFS["squashfs2-be"](Path(sys.argv[1]), Path("squashfs2-be.bin"))
PY
