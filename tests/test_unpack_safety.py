"""Hostile and broken images: limits hold, nothing leaves the tree, every problem is a report entry."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import lzma
import random
import signal
import tarfile
import zlib
from pathlib import Path

import pytest

from nospy.cli import run
from nospy.errors import InputError
from nospy.firmware.tree import EntryType
from nospy.firmware.unpack import Limits, open_data, open_image
from unpack_images import build, make_rootfs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def rootfs(workdir: Path) -> Path:
    return make_rootfs(workdir / "rootfs")


def _messages(tree: object) -> str:
    return "\n".join(i.message for i in tree.issues)  # type: ignore[attr-defined]


def test_member_names_with_dotdot_land_inside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("../../../../tmp/evil", "/etc/passwd", "a/../../b"):
            info = tarfile.TarInfo(name)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    tree = open_data(buf.getvalue(), "evil.tar")
    assert {e.path for e in tree.files()} == {"/tmp/evil", "/etc/passwd", "/b"}
    assert "'../../../../tmp/evil' points outside the archive: shown as /tmp/evil" in _messages(tree)
    assert not Path("/tmp/evil").exists() or Path("/tmp/evil").read_bytes() != b"evil"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_gzip_bomb_stops_at_the_ratio_limit() -> None:
    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)  # 64 MiB of zeros in ~64 KiB
    tree = open_data(bomb, "bomb.gz")
    assert "compression ratio above 200" in _messages(tree)
    assert sum(e.size for e in tree.files()) < 64 << 20


def test_jffs2_symlink_claiming_gigabytes_is_refused() -> None:
    """A jffs2 symlink whose inode claims a 4 GiB target: reported at once, never read as gigabytes of zeros."""
    image = bytearray((Path(__file__).parent / "data" / "fuzz" / "jffs2.bin").read_bytes())
    at = image.find(b"\x85\x19\x02\xe0")  # jffs2 raw inodes: magic 0x1985, node type 0xe002
    patched = 0
    while at >= 0:
        if int.from_bytes(image[at + 20 : at + 24], "little") & 0o170000 == 0o120000:  # mode: a symlink
            image[at + 28 : at + 32] = (0xFFFFFFF0).to_bytes(4, "little")  # isize
            patched += 1
        at = image.find(b"\x85\x19\x02\xe0", at + 4)
    assert patched == 1
    tree = open_data(bytes(image), "j.bin", Limits(timeout=60))
    assert [i.message for i in tree.issues] == [
        "/etc: directory unreadable: symlink target of 4294967280 bytes, longer than a path can be"
    ]
    etc = tree.get("/etc")  # the tree around it is still there
    assert etc is not None and etc.type is EntryType.DIR


def test_total_bytes_limit(rootfs: Path, workdir: Path) -> None:
    image = build("tar.xz", rootfs, workdir)
    tree = open_image(image, Limits(max_bytes=1 << 20))
    assert "unpacked-bytes limit of 1048576 bytes reached" in _messages(tree)
    assert tree.root_chain is None  # the archive inside was never reached
    assert open_image(image).root_chain == "tar.xz.img!xz@0x0!tar@0x0"  # default limits: all of it


def test_depth_limit() -> None:
    data = b"innermost payload" * 10
    for _ in range(12):
        data = zlib.compress(data, wbits=31)
    tree = open_data(data, "deep.gz", Limits(max_depth=4))
    assert "nesting depth limit of 4 reached" in _messages(tree)
    deepest = max(tree.files(), key=lambda e: e.chain.count("!"))
    assert deepest.chain == "deep.gz" + "!gzip@0x0" * 4


def test_time_limit(rootfs: Path, workdir: Path) -> None:
    tree = open_image(build("squashfs-xz", rootfs, workdir), Limits(timeout=1e-6))
    assert "time limit" in _messages(tree)


def test_truncated_firmware_keeps_what_is_readable(rootfs: Path, workdir: Path) -> None:
    kernel = lzma.compress(b"kernel" * 5000, format=lzma.FORMAT_ALONE)
    squash = build("squashfs-gzip", rootfs, workdir).read_bytes()
    cut = kernel + squash[: len(squash) // 2]
    tree = open_data(cut, "cut.bin")
    assert "squashfs: truncated" in _messages(tree)
    assert tree.read("/@image/lzma@0x0/data") == b"kernel" * 5000


def test_corrupt_squashfs_gives_issues_not_tracebacks(
    rootfs: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(build("squashfs-gzip", rootfs, workdir).read_bytes())
    for pos in range(0x60, len(data), 997):  # damage data and metadata blocks, keep the superblock
        data[pos] ^= 0x5A
    image = workdir / "corrupt.sqfs"
    image.write_bytes(data)
    tree = open_image(image)
    for entry in tree.files():
        with contextlib.suppress(InputError):
            tree.read(entry.path)
    assert run(["ls", str(image)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_symlink_loops_and_escapes_resolve_to_nothing() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, target in (
            ("etc/a", "b"),
            ("etc/b", "a"),
            ("etc/up", "../../../../../host"),
            ("etc/abs", "/proc/self"),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    tree = open_data(buf.getvalue(), "links.tar")
    assert {e.type for e in tree.entries() if e.path.startswith("/etc/")} == {EntryType.SYMLINK}
    for path in ("/etc/a", "/etc/up", "/etc/abs"):
        assert tree.resolve(path) is None
        with pytest.raises(InputError):
            tree.read(path)


def test_unknown_data_is_one_file() -> None:
    tree = open_data(b"\x00\x01 no format here " * 100, "blob.bin")
    assert [e.path for e in tree.files()] == ["/@image/raw@0x0/data"]
    assert "no known container" in _messages(tree)


def test_limits_flags(rootfs: Path, workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = build("tar.gz", rootfs, workdir)
    assert run(["ls", str(image), "--max-bytes", "100000"]) == 0
    assert "unpacked-bytes limit of 100000 bytes reached" in capsys.readouterr().err
    assert run(["ls", str(image), "--max-depth", "0"]) == 2  # bad usage
    assert "error: max_depth: must be from 1 to 64, not 0" in capsys.readouterr().err
    assert run(["ls", str(workdir / "missing.bin")]) == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_bytes": 0}, "max_bytes: must be at least 1, not 0"),
        ({"max_bytes": 1.5}, "max_bytes: must be a whole number, not 1.5"),
        ({"max_depth": 65}, "max_depth: must be from 1 to 64, not 65"),
        ({"max_ratio": 1}, "max_ratio: must be a number greater than 1, not 1"),
        ({"max_ratio": float("nan")}, "max_ratio: must be a number greater than 1, not nan"),
        ({"timeout": 0}, "timeout: must be a finite number of seconds greater than 0, not 0"),
        ({"timeout": float("inf")}, "timeout: must be a finite number of seconds greater than 0, not inf"),
    ],
)
def test_bad_limit_values_are_input_errors(values: dict[str, float], message: str) -> None:
    with pytest.raises(InputError) as info:
        Limits(**values)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_names_that_are_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        info = tarfile.TarInfo("etc/bad\udcffname")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    image = tmp_path / "latin1.tar"
    image.write_bytes(buf.getvalue())
    tree = open_image(image)
    assert tree.read("/etc/bad\udcffname") == b"ok"  # the tree keeps the bytes (as surrogates)
    assert run(["ls", str(image), "--format", "json"]) == 0
    paths = {e["path"] for e in json.loads(capsys.readouterr().out)["entries"]}
    assert "/etc/bad\\xffname" in paths  # the listing shows them escaped


def test_root_cannot_pass_its_files_off_as_the_unpackers(rootfs: Path) -> None:
    """A root filesystem with its own /@image/... entry does not replace the kernel the unpacker found."""
    kernel = b"the real kernel" * 100

    def tar_with(spoof: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path in sorted(rootfs.rglob("*")):
                tar.add(path, path.relative_to(rootfs).as_posix(), recursive=False)
            info = tarfile.TarInfo(spoof)
            info.size = 18
            tar.addfile(info, io.BytesIO(b"an innocent kernel"))
        return buf.getvalue()

    blob_at = len(tar_with("@image/placeholder"))  # a tar's size does not depend on its short names
    root = tar_with(f"@image/xz@{blob_at:#x}/data")  # where the unpacker will show the real kernel
    assert len(root) == blob_at
    tree = open_data(root + lzma.compress(kernel), "spoof.bin")
    assert tree.root_chain == "spoof.bin!tar@0x0"
    path = f"/@image/xz@{blob_at:#x}/data"
    assert tree.read(path) == kernel
    assert f"{path}: a second entry with this path: not shown" in _messages(tree)


def test_time_limit_alarm_is_always_disarmed(rootfs: Path, workdir: Path) -> None:
    """Alarms landing in the watchdog's own set-up or clean-up must not leave a timer running."""
    before = signal.getsignal(signal.SIGALRM)
    image = build("squashfs-gzip", rootfs, workdir).read_bytes()
    for _ in range(100):
        open_data(image, "fast.sqfs", Limits(timeout=1e-6))
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) == before


def test_zip_end_record_search_is_reused_for_the_next_candidates() -> None:
    """Data dense with zip local-header magics is searched for a central directory once, not once per
    magic; the reused answer is the one a fresh search gives, at every offset, in any order."""
    from nospy.firmware.unpack.handlers.archives import _next_eocd

    data = memoryview(b"PK\x03\x04" * 100 + b"PK\x05\x06" + b"PK\x03\x04" * 50 + b"PK\x05\x06" + bytes(30))
    fresh = [_next_eocd(data, offset, {}) for offset in range(len(data))]
    assert fresh[0] == 400 and fresh[401] == 604 and fresh[605] is None
    searches: dict[str, tuple[int, int | None]] = {}
    assert [_next_eocd(data, offset, searches) for offset in range(len(data))] == fresh
    assert [_next_eocd(data, offset, searches) for offset in reversed(range(len(data)))] == fresh[::-1]


def test_a_zip_among_dense_local_header_magics_is_still_found() -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("etc/shadow", "root::0:0:99999:7:::\n")
    tree = open_data(b"PK\x03\x04" * 20_000 + buf.getvalue(), "blob.bin")
    assert any(e.path.endswith("/etc/shadow") for e in tree.entries())


def test_a_stream_that_starts_with_a_long_run_is_no_bomb() -> None:
    """Two MiB of zeros and then data that does not compress: over its first 4 KiB of input the stream
    decodes at more than the ratio limit, over the stream at far less. It is unpacked whole."""
    import os

    payload = bytes(2 << 20) + os.urandom(300 << 10)
    tree = open_data(gzip.compress(payload, mtime=0), "blob.bin")
    assert not [i for i in tree.issues if "ratio" in i.message]
    assert any(e.size == len(payload) for e in tree.entries())


def _noise(size: int) -> bytes:
    return random.Random(size).randbytes(size)  # noqa: S311 - test data that does not compress, the same in every run


def test_what_each_chunk_yields_is_listed_in_the_order_of_the_chunks() -> None:
    """The engine walks every chunk of a data before it decodes their payloads; the issues still come
    in the order of the chunks: the first stream's payload (a cut xz stream) before the second stream."""
    inner = lzma.compress(_noise(300 << 10), format=lzma.FORMAT_XZ)
    second = lzma.compress(_noise(200 << 10), format=lzma.FORMAT_XZ)
    data = gzip.compress(inner[: len(inner) // 2], mtime=0) + bytes(512) + second[: len(second) // 2]
    tree = open_data(data, "two.bin")
    truncated = [i.chain for i in tree.issues if "truncated stream" in i.message]
    second_at = len(gzip.compress(inner[: len(inner) // 2], mtime=0)) + 512
    assert truncated == ["two.bin!gzip@0x0!xz@0x0", f"two.bin!xz@{second_at:#x}"]


def test_payloads_found_before_a_limit_stops_the_image_are_kept() -> None:
    """A payload is decoded once every chunk of its data has been found; a limit reached while they
    are found (a tar's member over the unpacked-bytes limit) leaves the payloads before it undecoded,
    but listed."""
    first = _noise(200 << 10)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = 2 << 20
        tar.addfile(info, io.BytesIO(_noise(2 << 20)))
    data = gzip.compress(first, mtime=0) + bytes(512) + buf.getvalue()
    tree = open_data(data, "stop.bin", Limits(max_bytes=1 << 20))
    assert "unpacked-bytes limit of 1048576 bytes reached" in _messages(tree)
    assert tree.read("/@image/gzip@0x0/data") == first


def test_a_time_limit_striking_anywhere_loses_and_repeats_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watchdog's alarm raises wherever the engine is. Struck at every few lines it runs (a gzip'd
    payload, a tar, a gzip'd tar.gz: chunks whose rest is done later), the image still opens and
    lists nothing twice: no issue, no filesystem, no payload."""
    import sys
    from types import FrameType
    from typing import Any

    from nospy.firmware.unpack import image as engine_module
    from nospy.firmware.unpack.limits import LimitError

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("etc/passwd", "bin/busybox", "etc/inittab"):
            content = _noise(5000 + len(name))
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    tar_gz = gzip.compress(buf.getvalue(), mtime=0)
    data = gzip.compress(_noise(100_000), mtime=0) + bytes(512) + buf.getvalue() + bytes(512) + gzip.compress(tar_gz)
    package = str(Path(engine_module.__file__).parent)
    scan = engine_module._Engine.scan
    armed = [False]

    def armed_scan(self: Any, *args: Any, **kwargs: Any) -> bool:  # the alarm is armed while the image is read
        top = not armed[0]
        armed[0] = True
        try:
            return scan(self, *args, **kwargs)
        finally:
            armed[0] = armed[0] and not top

    monkeypatch.setattr(engine_module._Engine, "scan", armed_scan)
    mounted: list[str] = []
    mount = engine_module.ImageTree._mount

    def counted_mount(self: Any, at: str, chain: str, *args: Any) -> None:
        mounted.append(chain)
        mount(self, at, chain, *args)

    monkeypatch.setattr(engine_module.ImageTree, "_mount", counted_mount)
    struck = 0
    for strike in range(1, 100_000):
        lines = [0]

        def local(frame: FrameType, event: str, arg: object, lines: list[int] = lines, strike: int = strike) -> Any:
            if event == "line" and armed[0]:
                lines[0] += 1
                if lines[0] == strike:
                    raise LimitError("time limit of 1 s reached")
            return local

        def tracer(frame: FrameType, event: str, arg: object, local: Any = local) -> Any:
            return local if armed[0] and frame.f_code.co_filename.startswith(package) else None

        mounted.clear()
        sys.settrace(tracer)
        try:
            tree = open_data(data, "x.bin")
        finally:
            sys.settrace(None)
        if lines[0] < strike:
            break  # the whole image was read before this strike
        struck += 1
        assert "time limit of 1 s reached" in _messages(tree)
        assert len({id(i) for i in tree.issues}) == len(tree.issues)
        assert "a second entry with this path" not in _messages(tree)
        assert len(set(mounted)) == len(mounted), strike
    assert struck > 50


def test_a_stream_stopped_by_a_limit_leaves_its_bytes_to_the_rest_of_the_image() -> None:
    """A tar holding a root filesystem as ``boot/rootfs.tar.gz``, then a stream that decodes past the
    unpacked-bytes limit: the stream's output is dropped, and the root filesystem is still unpacked,
    whichever the engine does first."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tar:
        for name, content in (("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"), ("bin/busybox", _noise(3000))):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w") as tar:
        rootfs = gzip.compress(inner.getvalue(), mtime=0)
        info = tarfile.TarInfo("boot/rootfs.tar.gz")
        info.size = len(rootfs)
        tar.addfile(info, io.BytesIO(rootfs))
    data = outer.getvalue() + bytes(512) + gzip.compress(_noise(2 << 20), mtime=0)
    tree = open_data(data, "fw.bin", Limits(max_bytes=1 << 20))
    assert "unpacked-bytes limit of 1048576 bytes reached" in _messages(tree)
    assert tree.root_chain is not None
    assert tree.root_chain.endswith("!/boot/rootfs.tar.gz!gzip@0x0!tar@0x0")
