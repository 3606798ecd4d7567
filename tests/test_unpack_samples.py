"""The real samples in ../shared/firmware, one test each: ``nospy ls`` output compared whole with the
expected listing beside the tests (tests/expected/unpack/SAMPLE.ls), plus the facts that matter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nospy.cli import run
from nospy.errors import InputError
from nospy.firmware.unpack import open_image

EXPECTED = Path(__file__).parent / "expected" / "unpack"


def _ls(sample: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    assert run(["ls", str(sample)]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_trendnet_vendor_lzma_squashfs(shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """TRENDnet TEW-733GR: squashfs 4.0 whose LZMA blocks have a 5-byte header and lc=1 lp=2 pb=2."""
    sample = shared / "firmware" / "trendnet-tew733gr-rootfs.squashfs"
    out, err = _ls(sample, capsys)
    assert err == ""
    assert out == (EXPECTED / f"{sample.name}.ls").read_text()
    tree = open_image(sample)
    assert sum(1 for _ in tree.entries()) == 1811  # the superblock's inode count
    assert tree.read("/bin/busybox", 4) == b"\x7fELF"
    assert tree.resolve("/dev/log") is None  # -> /var/logs: not in the image


def test_ubi_with_ubifs_volume(shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = shared / "firmware" / "sample-ubi.img"
    out, err = _ls(sample, capsys)
    assert err == ""
    assert out == (EXPECTED / f"{sample.name}.ls").read_text()
    tree = open_image(sample)
    assert tree.root_chain == "sample-ubi.img!ubi@0x0!vol:rootfs!ubifs@0x0"
    assert len(tree.read("/testfile1")) == 62


def test_fit_with_kernel_fdt_and_ramdisk(shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sample = shared / "firmware" / "sample-fit.itb"
    out, err = _ls(sample, capsys)
    assert err == ""
    assert out == (EXPECTED / f"{sample.name}.ls").read_text()
    tree = open_image(sample)
    fdt = tree.read("/@image/fit@0x0/fdt/data")
    assert fdt[:4] == b"\xd0\x0d\xfe\xed" and len(fdt) == 155  # dumpimage -p 1 gives the same 155 bytes


def test_dirtraversal_tar_stays_inside(shared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Symlinks to /etc/passwd, ../../ and ../../../../ resolve inside the image, never on the host."""
    sample = shared / "firmware" / "dirtraversal.tar"
    out, err = _ls(sample, capsys)
    assert err == ""
    assert out == (EXPECTED / f"{sample.name}.ls").read_text()
    tree = open_image(sample)
    assert tree.resolve("/foo") == "/"
    assert tree.resolve("/subdir/foo2") == "/"
    assert tree.resolve("/subdir/README_link") == "/README.txt"
    assert tree.resolve("/bar") is None
    for link in ("/bar", "/subdir/bar2", "/foo/etc/passwd", "/subdir/foo2/etc/shadow"):
        with pytest.raises(InputError):
            tree.read(link)
    assert run(["ls", str(sample), "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["root"] == "dirtraversal.tar!tar@0x0"
    assert {e["path"] for e in listing["entries"]} >= {"/bar", "/foo", "/subdir/foo2", "/ls"}
