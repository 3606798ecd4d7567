"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): tile and entry-bundle paths, bundles, and Merkle
subtree hashes read from tiles.

A level-``l`` tile holds up to 256 consecutive hashes of subtrees of ``256**l`` leaves; the rightmost
tile of each level may be partial (``.p/<W>``). Entry bundles hold the entries behind each level-0
tile as big-endian uint16 length-prefixed byte strings.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from nospy.errors import InputError
from nospy.ledger import merkle

__all__ = [
    "MAX_ENTRY",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TilePath",
    "TileReader",
    "bundle_path",
    "encode_bundle",
    "parse_bundle",
    "parse_tile_path",
    "tile_path",
    "tile_width",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY = 0xFFFF  # uint16 length prefix
MAX_LEVEL = 63
MAX_TILE_BYTES = TILE_WIDTH * merkle.HASH_SIZE
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_ENTRY)


def _encode_index(n: int) -> str:
    if n < 0:
        raise ValueError("negative tile index")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is not 1-256")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``, e.g. level 0 index 1234067 width 8 -> ``tile/0/x001/x234/067.p/8``."""
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level {level} is not 0-63")
    return f"tile/{level}/{_encode_index(index)}{_suffix(width)}"


def bundle_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``."""
    return f"tile/entries/{_encode_index(index)}{_suffix(width)}"


@dataclass(frozen=True)
class TilePath:
    """A parsed tile path; ``level`` is None for an entry bundle."""

    level: int | None
    index: int
    width: int


_DECIMAL = r"(?:0|[1-9][0-9]*)"
_PATH_RE = re.compile(
    rf"tile/(?P<level>entries|{_DECIMAL})/(?P<index>(?:x[0-9]{{3}}/)*[0-9]{{3}})(?:\.p/(?P<width>[1-9][0-9]*))?"
)


def parse_tile_path(path: str) -> TilePath:
    """Parse a tile or entry-bundle path in its one canonical spelling; anything else is an error."""
    m = _PATH_RE.fullmatch(path)
    if m is None:
        raise InputError(f"not a tile path: {path[:120]!r}")
    level_text, index_text, width_text = m.group("level"), m.group("index"), m.group("width")
    level = None if level_text == "entries" else int(level_text)
    if level is not None and level > MAX_LEVEL:
        raise InputError(f"tile level {level} is above 63")
    if index_text.startswith("x000"):
        raise InputError(f"tile index with a leading zero group: {path[:120]!r}")
    index = int(index_text.replace("x", "").replace("/", ""))
    width = TILE_WIDTH if width_text is None else int(width_text)
    if width_text is not None and width >= TILE_WIDTH:
        raise InputError(f"partial tile width {width} is not 1-255")
    return TilePath(level, index, width)


def tile_width(level: int, index: int, size: int) -> int:
    """How many hashes tile (level, index) holds in a tree of ``size`` leaves (0: not there yet)."""
    hashes = size >> (TILE_HEIGHT * level)  # complete subtree hashes at this level
    start = index * TILE_WIDTH
    return max(0, min(TILE_WIDTH, hashes - start))


def encode_bundle(entries: list[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY:
            raise InputError(f"entry of {len(entry)} bytes is above the 65,535-byte limit")
        out += struct.pack(">H", len(entry))
        out += entry
    return bytes(out)


def parse_bundle(data: bytes, width: int | None = None) -> list[bytes]:
    """The entries of a bundle; with ``width``, exactly that many and nothing after them."""
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + 2 > end:
            raise InputError("entry bundle: truncated length prefix")
        n = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if pos + n > end:
            raise InputError("entry bundle: entry runs past the end")
        entries.append(data[pos : pos + n])
        pos += n
        if len(entries) > TILE_WIDTH:
            raise InputError("entry bundle: more than 256 entries")
    if width is not None and len(entries) != width:
        raise InputError(f"entry bundle holds {len(entries)} entries, expected {width}")
    return entries


def split_tile(data: bytes, width: int) -> list[bytes]:
    if len(data) != width * merkle.HASH_SIZE:
        raise InputError(f"tile of {len(data)} bytes, expected {width} hashes ({width * merkle.HASH_SIZE} bytes)")
    return [data[i : i + merkle.HASH_SIZE] for i in range(0, len(data), merkle.HASH_SIZE)]


class TileReader:
    """Merkle subtree hashes of a tree of ``size`` leaves, from tiles fetched with ``fetch(path)``.

    Nothing read here is trusted on its own: callers verify the proofs built from it against a
    signed checkpoint, so a wrong tile shows up as a failed proof.
    """

    def __init__(self, fetch: Callable[[str], bytes], size: int) -> None:
        self._fetch = fetch
        self.size = size
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._nodes: dict[tuple[int, int], bytes] = {}  # subtrees hashed from more than one tile hash

    def tile(self, level: int, index: int) -> bytes:
        """The tile's bytes, full or as partial as this tree size makes it."""
        key = (level, index)
        data = self._tiles.get(key)
        if data is None:
            width = tile_width(level, index, self.size)
            if width == 0:
                raise InputError(f"tile {level}/{index} is beyond a tree of size {self.size}")
            data = self._fetch(tile_path(level, index, width))
            if len(data) != width * merkle.HASH_SIZE:
                raise InputError(f"{tile_path(level, index, width)}: {len(data)} bytes, expected {width * 32}")
            if len(self._tiles) > 1024:  # bounded: a proof touches a few tiles per level
                self._tiles.clear()
            self._tiles[key] = data
        return data

    def perfect(self, height: int, index: int) -> bytes:
        """MTH of the perfect subtree of ``2**height`` leaves number ``index`` (merkle.PerfectHash).

        Its ``2**(height % 8)`` lowest hashes sit side by side in one tile; they are hashed pairwise
        straight from the tile's bytes (one slice per node), the cheapest way to run SHA-256 from
        Python, and only the nodes of this subtree are computed.
        """
        if (index + 1) << height > self.size:
            raise InputError(f"subtree {height}/{index} is not complete in a tree of size {self.size}")
        level, within = divmod(height, TILE_HEIGHT)
        tile, offset = divmod(index << within, TILE_WIDTH)
        if within == 0:
            return self.tile(level, tile)[offset * 32 : offset * 32 + 32]
        # remembered: many proofs from one reader share the nodes near the root and the right edge
        node = self._nodes.get((height, index))
        if node is not None:
            return node
        buf = self.tile(level, tile)[offset * 32 : (offset + (1 << within)) * 32]
        sha = hashlib.sha256
        while len(buf) > merkle.HASH_SIZE:
            buf = b"".join([sha(b"\x01" + buf[i : i + 64]).digest() for i in range(0, len(buf), 64)])
        if len(self._nodes) > 65536:
            self._nodes.clear()
        self._nodes[(height, index)] = buf
        return buf

    def root(self) -> bytes:
        return merkle.range_hash(0, self.size, self.perfect) if self.size else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size if size is None else size, self.perfect)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(size1, self.size if size2 is None else size2, self.perfect)
