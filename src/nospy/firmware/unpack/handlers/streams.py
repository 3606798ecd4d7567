"""Compressed streams: gzip, xz, LZMA-alone, bzip2, zstd, LZ4 frames and lzop, found at any offset.

References: RFC 1952 (gzip), the .xz file format 1.1.0, the LZMA SDK's ``lzma.txt`` (LZMA-alone),
the bzip2 format as in bzip2's ``decompress.c``, RFC 8878 (zstd), the LZ4 frame format 1.6.1, and
lzop's ``lzop.c`` (header and block layout). Decoders: the standard library (zlib, lzma, bz2),
``backports.zstd`` (the stdlib ``compression.zstd`` API), ``lz4.frame`` and ``lzallright`` (LZO1X).

Each stream is decoded in steps with a bounded output per step, so the unpacked-bytes and ratio limits
stop a bomb before it is in memory. A stream that breaks off gives what was decoded plus an issue.
Limitations: the legacy LZ4 format of old kernels and LZMA streams with non-default properties outside
squashfs are not recognised.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import ClassVar, Protocol

import lz4.frame
from backports import zstd
from lzallright import LZOCompressor

from nospy.firmware.unpack.base import Blob, Chunk, Context, FormatError, Handler, Structs
from nospy.firmware.unpack.limits import LimitError

__all__ = ["Bzip2", "Gzip", "Lz4", "Lzma", "Lzop", "Xz", "Zstd"]

_FIRST_IN = 1 << 12  # a magic inside other data fails to decode within its first bytes: read those first
_STEP_IN = 1 << 18
_STEP_OUT = 1 << 22


class _Decoder(Protocol):
    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class _Zlib:
    """zlib's decompressobj behind the ``max_length``/``needs_input`` API of lzma and bz2."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        out = self._d.decompress(self._d.unconsumed_tail + data, max(max_length, 0))
        self.needs_input = not self._d.unconsumed_tail
        return out


def decode_stream(data: memoryview, offset: int, ctx: Context, dec: _Decoder) -> tuple[bytes, int, str | None]:
    """Decode from ``offset``: (output, end of the stream, problem or None). Raises FormatError if nothing decodes."""
    out = bytearray()
    pos = offset
    problem = None
    # reads end at offset + 4 KiB, then at each multiple of 256 KiB: data dense with a magic is not
    # copied 256 KiB per candidate, and the ratio check sees the input it saw with 256 KiB reads
    bound = _FIRST_IN
    least = min(_STEP_IN, len(data) - offset)
    while not dec.eof:
        piece = b""
        if dec.needs_input:
            if pos >= len(data):
                problem = "truncated stream"
                break
            piece = bytes(data[pos : offset + bound])
            pos += len(piece)
            bound = (pos - offset) // _STEP_IN * _STEP_IN + _STEP_IN
        try:
            produced = dec.decompress(piece, _STEP_OUT)
        except (OSError, EOFError, ValueError, RuntimeError, zlib.error, lzma.LZMAError, zstd.ZstdError) as exc:
            if not out:
                raise FormatError(f"not a valid stream: {exc}") from exc
            problem = f"corrupt stream after {len(out)} bytes: {exc}"
            break
        out += produced
        ctx.budget.charge(len(produced))
        ctx.budget.check_ratio(len(out), max(pos - offset, least))
    end = pos - len(dec.unused_data or b"") if dec.eof else pos
    return bytes(out), end, problem


class _StreamHandler(Handler):
    MIN_OUT: ClassVar[int] = 1

    def decoder(self) -> _Decoder:
        raise NotImplementedError

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        used = ctx.budget.used
        try:
            out, end, problem = decode_stream(data, offset, ctx, self.decoder())
        except FormatError:
            return None  # a magic inside other data, not a stream
        except LimitError as exc:
            # what was decoded is dropped and holds no memory: the rest of the image may use it
            ctx.budget.used = used
            raise FormatError(str(exc)) from exc
        if len(out) < self.MIN_OUT:
            return None
        if problem:
            ctx.issue(offset, f"{self.NAME}: {problem}; the decoded part is still unpacked")
        return Chunk(offset, max(end, offset + 1), blobs=(Blob("", memoryview(out)),))

    def peek(self, head: bytes, size: int) -> bytes | None:
        try:
            return self.decoder().decompress(head, size)
        except (OSError, EOFError, ValueError, RuntimeError, zlib.error, lzma.LZMAError, zstd.ZstdError):
            return b""


class Gzip(_StreamHandler):
    NAME = "gzip"
    PATTERNS = (rb"\x1f\x8b\x08[\x00-\x1f]",)  # ID1 ID2 CM=deflate FLG (reserved bits clear), RFC 1952 2.3
    DOC = __doc__ or ""

    def decoder(self) -> _Decoder:
        return _Zlib(16 + zlib.MAX_WBITS)


class Xz(_StreamHandler):
    NAME = "xz"
    PATTERNS = (rb"\xfd7zXZ\x00",)
    DOC = __doc__ or ""

    def decoder(self) -> _Decoder:
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)


class Lzma(_StreamHandler):
    NAME = "lzma"
    # properties byte 0x5d (lc=3 lp=0 pb=2, what every lzma tool writes), a power-of-two dictionary
    # of 64 KiB-64 MiB, a size (or -1), and the range coder's first byte, always 0
    PATTERNS = (rb"\x5d\x00\x00(?:[\x01\x02\x04\x08\x10\x20\x40\x80]\x00|\x00[\x01\x02\x04])",)
    DOC = __doc__ or ""
    MIN_OUT = 64  # the pattern is weak: a real stream is never this small in firmware

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        head = bytes(data[offset : offset + 14])
        if len(head) < 14 or head[13] != 0:
            return None
        size = int.from_bytes(head[5:13], "little")
        if size != (1 << 64) - 1 and not 0 < size < 1 << 32:
            return None
        return super().identify(data, offset, ctx)

    def decoder(self) -> _Decoder:
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)


class Bzip2(_StreamHandler):
    NAME = "bzip2"
    PATTERNS = (rb"BZh[1-9]1AY&SY",)
    DOC = __doc__ or ""

    def decoder(self) -> _Decoder:
        return bz2.BZ2Decompressor()


class Zstd(_StreamHandler):
    NAME = "zstd"
    PATTERNS = (rb"\x28\xb5\x2f\xfd",)
    DOC = __doc__ or ""

    def decoder(self) -> _Decoder:
        return zstd.ZstdDecompressor()


class Lz4(_StreamHandler):
    NAME = "lz4"
    PATTERNS = (rb"\x04\x22\x4d\x18",)
    DOC = __doc__ or ""

    def decoder(self) -> _Decoder:
        return lz4.frame.LZ4FrameDecompressor()  # type: ignore[no-any-return]


_LZOP = Structs(
    ">",
    """
struct lzop_head {
    char     magic[9];
    uint16   version;
    uint16   lib_version;
    uint16   version_needed;
    uint8    method;
    uint8    level;
    uint32   flags;
};
""",
)
_F_ADLER32_D, _F_ADLER32_C, _F_H_FILTER, _F_CRC32_D, _F_CRC32_C = 0x1, 0x2, 0x800, 0x100, 0x200
_LZOP_MAX_BLOCK = 64 << 20  # lzop's MAX_BLOCK_SIZE


class Lzop(Handler):
    NAME = "lzo"
    PATTERNS = (rb"\x89LZO\x00\r\n\x1a\n",)
    DOC = __doc__ or ""

    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        raw = bytes(data[offset : offset + 64])
        if len(raw) < len(_LZOP.lzop_head):
            raise FormatError("lzop header truncated")
        head = _LZOP.lzop_head(raw)
        if head.version_needed > head.version or head.method not in {1, 2, 3} or head.level > 9:
            return None  # the magic inside a program that reads lzop files, not a stream
        if head.version < 0x0940:
            raise FormatError(f"lzop version {head.version:#x} before 0.94 is not read")
        pos = offset + len(_LZOP.lzop_head)
        if head.flags & _F_H_FILTER:
            pos += 4
        pos += 4 + 4 + 4  # mode, mtime low, mtime high
        name_len = data[pos] if pos < len(data) else 0
        pos += 1 + name_len + 4  # name, header checksum
        out = bytearray()
        lzo = LZOCompressor()
        while True:
            dst_len = int.from_bytes(data[pos : pos + 4], "big") if pos + 4 <= len(data) else None
            if dst_len == 0:
                pos += 4
                break
            if dst_len is None or pos + 8 > len(data):
                ctx.issue(offset, "lzo: truncated stream; the decoded part is still unpacked")
                break
            src_len = int.from_bytes(data[pos + 4 : pos + 8], "big")
            pos += 8
            if dst_len > _LZOP_MAX_BLOCK or src_len > dst_len:
                raise FormatError(f"lzo: bad block sizes {src_len}/{dst_len} at {pos:#x}")
            pos += 4 * bool(head.flags & (_F_ADLER32_D | _F_CRC32_D))
            if src_len < dst_len:
                pos += 4 * bool(head.flags & (_F_ADLER32_C | _F_CRC32_C))
            block = bytes(data[pos : pos + src_len])
            pos += src_len
            try:
                out += block if src_len == dst_len else lzo.decompress(block, output_size_hint=dst_len)
            except Exception as exc:  # noqa: BLE001 - lzallright raises its own exception type
                ctx.issue(offset, f"lzo: corrupt block: {exc}; the decoded part is still unpacked")
                break
            ctx.budget.charge(dst_len)
        return Chunk(offset, min(pos, len(data)), blobs=(Blob("", memoryview(bytes(out))),))
