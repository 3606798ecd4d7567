"""C2SP tlog-tiles paths, widths and bundles, against the spec's own examples."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nospy.errors import InputError
from nospy.ledger import tiles


def test_spec_path_examples() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(2, 5, 17) == "tile/2/005.p/17"
    assert tiles.bundle_path(1234067, 8) == "tile/entries/x001/x234/067.p/8"
    assert tiles.bundle_path(1000) == "tile/entries/x001/000"
    assert tiles.parse_tile_path("tile/0/x001/x234/067") == tiles.TilePath(0, 1234067, 256)
    assert tiles.parse_tile_path("tile/entries/x001/x234/067.p/8") == tiles.TilePath(None, 1234067, 8)


@pytest.mark.parametrize(
    "path",
    [
        "tile/00/000",  # leading zero in the level
        "tile/64/000",  # level above 63
        "tile/0/5",  # index not in 3-digit groups
        "tile/0/x000/005",  # a leading zero group
        "tile/0/001/002",  # inner group without x
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/08",
        "tile/0/../../etc/passwd",
        "tile/data/000",
        "tile/0/000/",
    ],
)
def test_non_canonical_paths_are_rejected(path: str) -> None:
    with pytest.raises(InputError):
        tiles.parse_tile_path(path)


@given(st.integers(0, 1 << 62), st.integers(0, 63), st.integers(1, 256))
def test_paths_round_trip(index: int, level: int, width: int) -> None:
    assert tiles.parse_tile_path(tiles.tile_path(level, index, width)) == tiles.TilePath(level, index, width)
    assert tiles.parse_tile_path(tiles.bundle_path(index, width)) == tiles.TilePath(None, index, width)


def test_spec_widths_for_size_70000() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0 tile of
    # width 112, one full level 1 tile, one partial level 1 tile of width 17, and one partial level 2
    # tile of width 1"
    size = 70_000
    assert [tiles.tile_width(0, n, size) for n in range(275)] == [256] * 273 + [112, 0]
    assert [tiles.tile_width(1, n, size) for n in range(3)] == [256, 17, 0]
    assert [tiles.tile_width(2, n, size) for n in range(2)] == [1, 0]
    assert tiles.tile_width(3, 0, size) == 0
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert tiles.tile_width(0, 0, 256) == 256
    assert tiles.tile_width(1, 0, 256) == 1


def test_bundles() -> None:
    entries = [b"", b"a", b"x" * 65535]
    data = tiles.encode_bundle(entries)
    assert data[:5] == b"\x00\x00\x00\x01a"
    assert tiles.parse_bundle(data, 3) == entries
    with pytest.raises(InputError):
        tiles.parse_bundle(data, 2)
    with pytest.raises(InputError):
        tiles.parse_bundle(data[:-1])
    with pytest.raises(InputError):
        tiles.parse_bundle(data + b"\x00")
    with pytest.raises(InputError):
        tiles.encode_bundle([b"x" * 65536])
