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
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from nospy.errors import InputError
from nospy.ledger import merkle

__all__ = [
    "MAX_ENTRY",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileCache",
    "TilePath",
    "TileReader",
    "behind_proof",
    "bundle_path",
    "encode_bundle",
    "parse_bundle",
    "parse_tile_path",
    "read_bundle",
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


def _pyramid(tile: bytes) -> tuple[bytes, ...]:
    """Every level of the perfect subtrees inside one tile: ``levels[k]`` holds the hashes of the
    complete ``2**k``-unit subtrees side by side (levels[0] is the tile itself).

    A full tile costs 255 SHA-256 calls, which is what one inclusion proof needs anyway (its
    siblings inside a tile cover all but 8 of those nodes), and every later proof through the same
    tile costs none. Each call hashes ``0x01 || left || right`` straight from a slice of the level
    below: per call, hashlib's own overhead is most of the price, so there is nothing to batch.
    """
    levels = [tile]
    sha = hashlib.sha256
    buf = tile
    while len(buf) >= 2 * merkle.HASH_SIZE:
        end = len(buf) - len(buf) % (2 * merkle.HASH_SIZE)  # an odd last node is not a complete pair
        buf = b"".join([sha(b"\x01" + buf[i : i + 64]).digest() for i in range(0, end, 64)])
        levels.append(buf)
    return tuple(levels)


class TileCache:
    """A bounded, thread-safe LRU of hashed tiles, shared by the readers of one log.

    Keys are (level, index, width): a tile path names immutable bytes under C2SP tlog-tiles (a
    partial tile has its own path per width), so one cache serves every checkpoint of the log. What
    is cached is only as trusted as the proofs built from it, which callers verify; after a proof
    fails, `clear` drops whatever a lying source may have put here.
    """

    def __init__(self, max_tiles: int = 4096) -> None:
        self.max_tiles = max_tiles  # a full tile's pyramid is about 16 KB
        self._items: OrderedDict[tuple[int, int, int], tuple[bytes, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, int]) -> tuple[bytes, ...] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[int, int, int], value: tuple[bytes, ...]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_tiles:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def behind_proof(fetch: Callable[[str], bytes], served_size: int, seen_size: int) -> list[bytes]:
    """The consistency proof that the tree of ``seen_size`` (seen before) extends the smaller tree a
    log serves now, read from the larger tree's tiles: a cache or mirror behind the log has them,
    a log that rewrote its history may not (`InputError`, naming both sizes)."""
    try:
        return TileReader(fetch, seen_size).consistency_proof(served_size) if served_size else []
    except InputError as exc:
        raise InputError(
            f"the log's checkpoint has size {served_size}, after size {seen_size} was seen, and its tiles "
            f"cannot prove the two consistent: {exc}"
        ) from None


def _read_partial(fetch: Callable[[str], bytes], path: str, full_path: str, width: int) -> tuple[bytes, bool]:
    """The tile or bundle at ``path`` of ``width`` entries, or when a partial one cannot be read, the
    full one at ``full_path``; and whether it is the full one.

    C2SP tlog-tiles: a log may delete a partial tile once the full one exists, and a client then reads
    the full one's first entries (a tree seen before the log grew, or read while it grew).
    """
    try:
        return fetch(path), False
    except InputError as exc:
        if width == TILE_WIDTH:
            raise
        try:
            return fetch(full_path), True
        except InputError as full:
            raise InputError(f"{exc}; nor its full tile: {full}") from None


def read_bundle(fetch: Callable[[str], bytes], index: int, size: int) -> list[bytes]:
    """The entries of bundle ``index`` of a tree of ``size`` entries (unverified: prove them included)."""
    width = tile_width(0, index, size)
    data, full = _read_partial(fetch, bundle_path(index, width), bundle_path(index), width)
    return parse_bundle(data, TILE_WIDTH)[:width] if full else parse_bundle(data, width)


class TileReader:
    """Merkle subtree hashes of a tree of ``size`` leaves, from tiles fetched with ``fetch(path)``.

    Nothing read here is trusted on its own: callers verify the proofs built from it against a
    signed checkpoint, so a wrong tile shows up as a failed proof. Without ``cache`` the reader
    keeps the tiles it hashed for its own lifetime (one proof, one audit); a server passes one
    `TileCache` to the readers of every request.
    """

    def __init__(self, fetch: Callable[[str], bytes], size: int, cache: TileCache | None = None) -> None:
        self._fetch = fetch
        self.size = size
        self._cache = cache if cache is not None else TileCache()

    def pyramid(self, level: int, index: int) -> tuple[bytes, ...]:
        """Tile (level, index), as wide as this tree size makes it, and the subtrees inside it."""
        width = tile_width(level, index, self.size)
        key = (level, index, width)
        levels = self._cache.get(key)
        if levels is None:
            if width == 0:
                raise InputError(f"tile {level}/{index} is beyond a tree of size {self.size}")
            path = tile_path(level, index, width)
            data, full = _read_partial(self._fetch, path, tile_path(level, index), width)
            if full:
                if len(data) != TILE_WIDTH * merkle.HASH_SIZE:
                    raise InputError(f"{path}: {len(data)} bytes, expected {TILE_WIDTH * merkle.HASH_SIZE}")
                path, data = tile_path(level, index), data[: width * merkle.HASH_SIZE]
            if len(data) != width * merkle.HASH_SIZE:
                raise InputError(f"{path}: {len(data)} bytes, expected {width * merkle.HASH_SIZE}")
            levels = _pyramid(data)
            self._cache.put(key, levels)
        return levels

    def tile(self, level: int, index: int) -> bytes:
        """The tile's bytes, full or as partial as this tree size makes it."""
        return self.pyramid(level, index)[0]

    def perfect(self, height: int, index: int) -> bytes:
        """MTH of the perfect subtree of ``2**height`` leaves number ``index`` (merkle.PerfectHash):
        a slice of the pyramid of the one tile that holds it."""
        if (index + 1) << height > self.size:
            raise InputError(f"subtree {height}/{index} is not complete in a tree of size {self.size}")
        level, within = divmod(height, TILE_HEIGHT)
        tile, offset = divmod(index, TILE_WIDTH >> within)
        row = self.pyramid(level, tile)[within]
        return row[offset * merkle.HASH_SIZE : (offset + 1) * merkle.HASH_SIZE]

    def root(self) -> bytes:
        return merkle.range_hash(0, self.size, self.perfect) if self.size else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size if size is None else size, self.perfect)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(size1, self.size if size2 is None else size2, self.perfect)
