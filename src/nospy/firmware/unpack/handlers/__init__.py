"""Every format handler, in the order they are asked when magics match at the same offset.

One place lists them (tests/test_unpack_handlers.py fails if a Handler subclass is missing here).
"""

from __future__ import annotations

from nospy.firmware.unpack.base import Handler
from nospy.firmware.unpack.handlers.archives import Cpio, SevenZip, Tar, Zip
from nospy.firmware.unpack.handlers.filesystems import Cramfs, Ext, Jffs2, Romfs
from nospy.firmware.unpack.handlers.headers import Chk, Fit, Seama, TpLink, Trx, UImage
from nospy.firmware.unpack.handlers.squashfs import Squashfs4
from nospy.firmware.unpack.handlers.streams import Bzip2, Gzip, Lz4, Lzma, Lzop, Xz, Zstd
from nospy.firmware.unpack.handlers.ubi import Ubi, Ubifs
from nospy.firmware.unpack.handlers.yaffs2 import Yaffs2

__all__ = ["HANDLERS"]

HANDLERS: tuple[Handler, ...] = (
    UImage(),
    Fit(),
    Trx(),
    TpLink(),
    Seama(),
    Chk(),
    Squashfs4(),
    Ubi(),
    Ubifs(),
    Jffs2(),
    Ext(),
    Cramfs(),
    Romfs(),
    Yaffs2(),
    Tar(),
    Cpio(),
    Zip(),
    SevenZip(),
    Gzip(),
    Xz(),
    Lzma(),
    Bzip2(),
    Zstd(),
    Lz4(),
    Lzop(),
)
