"""UBI images (every volume) and UBIFS filesystems, read by ``ubi-reader``.

References: the kernel's ``drivers/mtd/ubi/ubi-media.h`` (erase-counter header ``UBI#``, volume-ID
header ``UBI!``, volume table) and ``fs/ubifs/ubifs-media.h`` (common node header ``0x06101831``,
superblock, master, inode, directory-entry and data nodes). ``ubi-reader`` reads both; this module
feeds it the image from memory and turns its warnings into report entries.

Each UBI volume is a payload named after the volume (``ubi@0x0!vol:rootfs``) and identified again:
UBIFS, squashfs, a kernel. Limitations: fscrypt-encrypted UBIFS names and
contents are listed as stored (no key); PEB size is guessed from the spacing of erase-counter headers.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

from nospy.firmware.unpack.base import Chunk, Context, FormatError, Handler

__all__ = ["Ubi", "Ubifs"]

_EC = re.compile(rb"UBI#\x01")
_UBIFS_SB = rb"\x31\x18\x10\x06.{16}\x06"  # common header magic, then node_type 6 (superblock) at 20


class Ubi(Handler):
    NAME = "ubi"
    PATTERNS = (rb"UBI#\x01",)
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        starts = [m.start() for m in _EC.finditer(data, offset)]
        gaps = Counter(b - a for a, b in itertools.pairwise(starts))
        if not gaps:
            raise FormatError("a single erase block: PEB size unknown")
        peb = gaps.most_common(1)[0][0]
        end = offset
        for pos in starts:
            if pos != end:
                break
            end = pos + peb
        end = min(end, len(data))
        from nospy.firmware.unpack.handlers._ubireader import read_volumes  # noqa: PLC0415 - see its docstring

        return Chunk(offset, end, blobs=tuple(read_volumes(data[offset:end], peb, ctx, offset)))


class Ubifs(Handler):
    NAME = "ubifs"
    PATTERNS = (_UBIFS_SB,)
    DOC = __doc__ or ""
    FILESYSTEM = True

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        leb_size = int.from_bytes(data[offset + 36 : offset + 40], "little")  # ubifs_sb_node.leb_size
        leb_cnt = int.from_bytes(data[offset + 40 : offset + 44], "little")
        if not 4096 <= leb_size <= 1 << 24 or leb_cnt == 0:
            return None
        end = min(len(data), offset + leb_size * leb_cnt)
        from nospy.firmware.unpack.handlers._ubireader import open_ubifs  # noqa: PLC0415 - see its docstring

        return Chunk(offset, end, filesystem=open_ubifs(data[offset:end], leb_size, ctx, offset))
