"""Boot-loader and vendor headers that wrap a kernel and a root filesystem.

References:

- uImage (legacy): U-Boot's ``include/image.h`` (``struct legacy_img_hdr``, 64 bytes, big-endian,
  header CRC32 over the header with ``ih_hcrc`` zeroed); multi-file images (type 4) hold a zero-ended
  table of 32-bit sizes, each image padded to 4 bytes.
- FIT: U-Boot's ``doc/usage/fit/source_file_format.rst`` over the devicetree blob format
  (Devicetree Specification v0.4, chapter 5): every node under ``/images`` with ``data`` (embedded),
  ``data-offset``/``data-size`` (after the blob) or ``data-position`` (absolute).
- TRX: Broadcom/OpenWrt ``tools/firmware-utils/src/trx.c`` (``HDR0``, v1 three and v2 four partition
  offsets).
- TP-Link: OpenWrt ``tools/firmware-utils/src/tplink-safeloader.c``'s predecessor ``mktplinkfw.c``
  (``struct fw_header``, 512 bytes, v1 and v2).
- D-Link SEAMA: OpenWrt ``tools/firmware-utils/src/seama.h`` (``seamahdr_t``: magic, meta-data size,
  image size, MD5; the image follows the meta-data).
- Netgear CHK: OpenWrt ``tools/firmware-utils/src/mkchkimg.c`` (``struct chk_header``: header length,
  kernel and root filesystem lengths, board id).

Limitations: checksums other than the uImage header CRC are not verified (a vendor mismatch is
common and does not stop the device from booting it); signed FIT configurations are not checked.
"""

from __future__ import annotations

import itertools
import lzma
import struct
import zlib

from nospy.firmware.unpack.base import Blob, Chunk, Context, FormatError, Handler, Structs
from nospy.firmware.unpack.handlers.streams import decode_stream

__all__ = ["Chk", "Fit", "Seama", "TpLink", "Trx", "UImage"]

_C = Structs(
    ">",
    """
struct uimage_header {
    uint32  ih_magic;
    uint32  ih_hcrc;
    uint32  ih_time;
    uint32  ih_size;
    uint32  ih_load;
    uint32  ih_ep;
    uint32  ih_dcrc;
    uint8   ih_os;
    uint8   ih_arch;
    uint8   ih_type;
    uint8   ih_comp;
    char    ih_name[32];
};

struct fdt_header {
    uint32  magic;
    uint32  totalsize;
    uint32  off_dt_struct;
    uint32  off_dt_strings;
    uint32  off_mem_rsvmap;
    uint32  version;
    uint32  last_comp_version;
    uint32  boot_cpuid_phys;
    uint32  size_dt_strings;
    uint32  size_dt_struct;
};

struct seama_header {
    uint32  magic;
    uint16  reserved;
    uint16  metasize;
    uint32  size;
    char    digest[16];
};

struct chk_header {
    uint32  magic;
    uint32  header_len;
    char    reserved[8];
    uint32  kernel_chksum;
    uint32  rootfs_chksum;
    uint32  kernel_len;
    uint32  rootfs_len;
    uint32  image_chksum;
    uint32  header_chksum;
};

struct tplink_header {
    uint32  version;
    char    vendor_name[24];
    char    fw_version[36];
    uint32  hw_id;
    uint32  hw_rev;
    uint32  unk1;
    char    md5sum1[16];
    uint32  unk2;
    char    md5sum2[16];
    uint32  unk3;
    uint32  kernel_la;
    uint32  kernel_ep;
    uint32  fw_length;
    uint32  kernel_ofs;
    uint32  kernel_len;
    uint32  rootfs_ofs;
    uint32  rootfs_len;
    uint32  boot_ofs;
    uint32  boot_len;
};
""",
)
# struct trx_header { char magic[4]; uint32 len; uint32 crc32; uint16 flags; uint16 version;
# uint32 offsets[4]; }, little-endian. Read with struct, not dissect.cstruct: "HDR0" is short and
# common, and a blob dense with it asks the handler at every one (0.4 us a header instead of 17).
_TRX = struct.Struct("<4sIIHH4I")

_UIMAGE_MULTI = 4
_IH_COMP_LZMA = 3  # image.h: IH_COMP_LZMA
_LZMA_USUAL_PROPS = 0x5D


class UImage(Handler):
    NAME = "uimage"
    PATTERNS = (rb"\x27\x05\x19\x56",)
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        raw = bytes(data[offset : offset + 64])
        if len(raw) < 64:
            return None
        if zlib.crc32(raw[:4] + b"\0\0\0\0" + raw[8:]) != int.from_bytes(raw[4:8], "big"):
            return None  # the magic alone is four bytes; the header CRC makes it certain
        hdr = _C.uimage_header(raw)
        start = offset + 64
        end = start + hdr.ih_size
        if end > len(data):
            ctx.issue(offset, f"uimage: payload truncated ({len(data) - start} of {hdr.ih_size} bytes)")
            end = len(data)
        if hdr.ih_type != _UIMAGE_MULTI:
            if hdr.ih_comp == _IH_COMP_LZMA and start < end and data[start] != _LZMA_USUAL_PROPS:
                # the header says LZMA, but with properties the carving pattern does not expect (OpenWrt
                # builds some kernels with lc=1 lp=2 pb=2): decode it here, as U-Boot would
                out, _, problem = decode_stream(data[:end], start, ctx, lzma.LZMADecompressor(format=lzma.FORMAT_ALONE))
                if problem:
                    ctx.issue(offset, f"uimage: LZMA payload: {problem}")
                return Chunk(offset, end, blobs=(Blob("lzma", memoryview(out), 64),))
            return Chunk(offset, end, blobs=(Blob("", data[start:end], 64),))
        sizes = []
        pos = start
        while pos + 4 <= end:
            size = int.from_bytes(data[pos : pos + 4], "big")
            pos += 4
            if size == 0:
                break
            sizes.append(size)
        blobs = []
        for i, size in enumerate(sizes):
            blobs.append(Blob(f"part{i}", data[pos : min(pos + size, end)], pos - offset))
            pos += (size + 3) & ~3
        return Chunk(offset, end, blobs=tuple(blobs))


_FDT_BEGIN_NODE, _FDT_END_NODE, _FDT_PROP, _FDT_NOP, _FDT_END = 1, 2, 3, 4, 9
_FDT_MAX_DEPTH = 64


def _fdt_images(blob: bytes, hdr: object) -> dict[str, dict[str, bytes]]:
    """The properties of every node directly under ``/images`` of a devicetree blob."""
    struct_start: int = hdr.off_dt_struct  # type: ignore[attr-defined]
    struct_end = struct_start + hdr.size_dt_struct  # type: ignore[attr-defined]
    strings: int = hdr.off_dt_strings  # type: ignore[attr-defined]
    path: list[str] = []
    images: dict[str, dict[str, bytes]] = {}
    pos = struct_start
    while pos + 4 <= min(struct_end, len(blob)):
        token = int.from_bytes(blob[pos : pos + 4], "big")
        pos += 4
        if token == _FDT_BEGIN_NODE:
            nul = blob.find(b"\0", pos)
            if nul < 0:
                raise FormatError("fdt: unterminated node name")
            path.append(blob[pos:nul].decode("utf-8", "replace"))
            if len(path) > _FDT_MAX_DEPTH:
                raise FormatError("fdt: nodes nested too deep")
            pos = (nul + 4) & ~3
        elif token == _FDT_END_NODE:
            if not path:
                raise FormatError("fdt: unbalanced end of node")
            path.pop()
        elif token == _FDT_PROP:
            length = int.from_bytes(blob[pos : pos + 4], "big")
            nameoff = int.from_bytes(blob[pos + 4 : pos + 8], "big")
            value = blob[pos + 8 : pos + 8 + length]
            pos = (pos + 8 + length + 3) & ~3
            nul = blob.find(b"\0", strings + nameoff)
            name = blob[strings + nameoff : nul].decode("utf-8", "replace")
            if len(path) == 3 and path[1] == "images":
                images.setdefault(path[2], {})[name] = value
        elif token == _FDT_NOP:
            continue
        elif token == _FDT_END:
            break
        else:
            raise FormatError(f"fdt: unknown token {token:#x}")
    return images


class Fit(Handler):
    NAME = "fit"
    PATTERNS = (rb"\xd0\x0d\xfe\xed",)
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        raw = bytes(data[offset : offset + 40])
        if len(raw) < 40:
            return None
        hdr = _C.fdt_header(raw)
        if not 40 <= hdr.totalsize <= len(data) - offset or hdr.off_dt_struct >= hdr.totalsize:
            return None
        blob = bytes(data[offset : offset + hdr.totalsize])
        images = _fdt_images(blob, hdr)
        if not images:
            return None  # a plain devicetree, part of whatever holds it
        external = (hdr.totalsize + 3) & ~3
        end = offset + hdr.totalsize
        blobs = []
        for name, props in images.items():
            if "data" in props:
                start = blob.find(props["data"], 0) if props["data"] else -1
                blobs.append(Blob(name, memoryview(props["data"]), max(start, 0)))
                continue
            size = int.from_bytes(props.get("data-size", b""), "big")
            if "data-position" in props:
                start = int.from_bytes(props["data-position"], "big")
            elif "data-offset" in props:
                start = external + int.from_bytes(props["data-offset"], "big")
            else:
                ctx.issue(offset, f"fit: image {name} has no data")
                continue
            if offset + start + size > len(data) or start < hdr.totalsize:
                ctx.issue(offset, f"fit: image {name} lies outside the file or inside the tree itself")
                continue
            blobs.append(Blob(name, data[offset + start : offset + start + size], start))
            end = max(end, offset + start + size)
        return Chunk(offset, end, blobs=tuple(blobs))


class Trx(Handler):
    NAME = "trx"
    PATTERNS = (rb"HDR0",)
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        if len(data) - offset < _TRX.size:
            return None
        _magic, length, _crc, _flags, version, *declared = _TRX.unpack_from(data, offset)
        if version not in {1, 2} or length < 28:
            return None
        count = 3 if version == 1 else 4
        end = offset + length
        if end > len(data):
            ctx.issue(offset, f"trx: truncated ({len(data) - offset} of {length} bytes)")
            end = len(data)
        offsets = [o for o in declared[:count] if 28 <= o < length]  # after the header
        if not offsets or offsets != sorted(offsets):
            return None
        bounds = [*offsets, end - offset]
        blobs = tuple(
            Blob(f"part{i}", data[offset + a : offset + b], a) for i, (a, b) in enumerate(itertools.pairwise(bounds))
        )
        return Chunk(offset, end, blobs=blobs)


class TpLink(Handler):
    NAME = "tplink"
    PATTERNS = (rb"\x00\x00\x00[\x01\x02]TP-LINK Technologies\x00",)
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        raw = bytes(data[offset : offset + len(_C.tplink_header)])
        if len(raw) < len(_C.tplink_header):
            return None
        hdr = _C.tplink_header(raw)
        end = min(len(data), offset + max(hdr.fw_length, 512))
        blobs = []
        for name, start, declared in (
            ("kernel", hdr.kernel_ofs, hdr.kernel_len),
            ("rootfs", hdr.rootfs_ofs, hdr.rootfs_len),
        ):
            if declared == 0:
                continue
            if start < len(_C.tplink_header):
                raise FormatError(f"tplink: {name} at {start:#x} overlaps the header")
            size = declared
            if offset + start + size > len(data):
                ctx.issue(offset, f"tplink: {name} lies past the end of the file")
                size = max(0, len(data) - offset - start)
            blobs.append(Blob(name, data[offset + start : offset + start + size], start))
            end = max(end, offset + start + size)
        return Chunk(offset, end, blobs=tuple(blobs))


class Seama(Handler):
    NAME = "seama"
    PATTERNS = (rb"\x5e\xa3\xa4\x17\x00\x00",)  # magic, then the reserved field, always 0
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        raw = bytes(data[offset : offset + len(_C.seama_header)])
        if len(raw) < len(_C.seama_header):
            return None
        hdr = _C.seama_header(raw)
        start = len(_C.seama_header) + hdr.metasize
        if hdr.size == 0:
            return None  # a meta-data-only SEAMA block (a "seal"): nothing inside
        end = offset + start + hdr.size
        if end > len(data):
            ctx.issue(offset, f"seama: image truncated ({len(data) - offset - start} of {hdr.size} bytes)")
            end = len(data)
        return Chunk(offset, end, blobs=(Blob("", data[offset + start : end], start),))


class Chk(Handler):
    NAME = "chk"
    PATTERNS = (rb"\x2a\x23\x24\x5e",)
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        raw = bytes(data[offset : offset + len(_C.chk_header)])
        if len(raw) < len(_C.chk_header):
            return None
        hdr = _C.chk_header(raw)
        if not len(_C.chk_header) <= hdr.header_len <= 4096 or hdr.kernel_len == 0:
            return None
        blobs = []
        start = hdr.header_len
        for name, declared in (("kernel", hdr.kernel_len), ("rootfs", hdr.rootfs_len)):
            if declared == 0:
                continue
            size = declared
            if offset + start + size > len(data):
                ctx.issue(offset, f"chk: {name} lies past the end of the file")
                size = max(0, len(data) - offset - start)
            blobs.append(Blob(name, data[offset + start : offset + start + size], start))
            start += size
        return Chunk(offset, offset + start, blobs=tuple(blobs))
