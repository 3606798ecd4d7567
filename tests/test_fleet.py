"""``nospy fleet scan`` on a local Ray: per-image results equal single scans, shared cache, exit codes."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nospy.cli import run
from nospy.errors import InputError
from nospy.firmware.cache import ContentCache
from nospy.firmware.rootfs import EXAMPLE_BACKDOOR, build_example, plant
from nospy.firmware.scan import scan_report
from nospy.fleet import fleet_images, parse_list, scan_fleet

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TRENDNET = Path(__file__).resolve().parents[2] / "shared" / "firmware" / "trendnet-tew733gr-rootfs.squashfs"


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """One local Ray for the module: its start-up is paid once; scan_fleet joins it instead of starting one."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two releases of the example (the second without its backdoor), the TRENDnet sample, and junk."""
    work = tmp_path_factory.mktemp("fleet")
    root = build_example(work / "rootfs")
    folder = work / "images"
    folder.mkdir()
    subprocess.run(
        ["mksquashfs", str(root), str(folder / "rx200-1.0.sqsh"), "-all-root", "-noappend", "-quiet"], check=True
    )
    (root / EXAMPLE_BACKDOOR.lstrip("/")).unlink()
    plant(root, "/etc/hostname", "rx200-b\n")
    subprocess.run(
        ["mksquashfs", str(root), str(folder / "rx200-1.1.sqsh"), "-all-root", "-noappend", "-quiet"], check=True
    )
    shutil.copy(TRENDNET, folder / "tew733gr.sqsh")
    return folder


def test_fleet_results_match_single_scans(ray_local: Any, images: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    ContentCache.open(url).close()
    paths = fleet_images(images)
    assert [p.name for p in paths] == ["rx200-1.0.sqsh", "rx200-1.1.sqsh", "tew733gr.sqsh"]
    seen: list[str] = []
    result = scan_fleet(paths, cache_url=url, on_result=lambda r: seen.append(r.path))
    assert sorted(seen) == sorted(str(p) for p in paths)
    for path, got in zip(paths, result.images, strict=True):
        single = scan_report(path)
        assert got.path == str(path) and got.sha256 == single.target.sha256
        assert got.status == ("fail" if single.failed else "pass")
        assert got.severities == {k.value: v for k, v in Counter(f.severity for f in single.findings).items()}
        assert [(v.clause, v.status) for v in got.verdicts] == [(v.clause.value, v.status) for v in single.verdicts]
        assert got.errors == single.errors
    by_name = {Path(i.path).name: i for i in result.images}
    assert by_name["rx200-1.0.sqsh"].status == "fail" and by_name["rx200-1.1.sqsh"].status == "pass"
    assert not any(i.cached_report for i in result.images)
    again = scan_fleet(paths, cache_url=url)  # the same images again: every report from the cache
    assert all(i.cached_report for i in again.images)
    assert [i.model_copy(update={"cached_report": False}) for i in again.images] == result.images
    assert not result.unreadable and result.failed
    # an image gone by the time its task runs is an error of that image; the others are still scanned
    gone = scan_fleet([tmp_path / "gone.bin", paths[1]], cache_url=url)
    assert [i.status for i in gone.images] == ["error", "pass"]
    assert "no such file" in gone.images[0].errors[0].message and gone.unreadable and not gone.failed


def test_warm_loads_the_stack_and_the_cache_in_a_worker(ray_local: Any, tmp_path: Path) -> None:
    from nospy.fleet.run import warm

    url = f"sqlite:///{tmp_path / 'cache.db'}"
    ContentCache.open(url).close()

    def loaded(cache_url: str) -> tuple[int, bool, bool]:
        import sys

        from nospy.fleet import run as fleet_run

        return os.getpid(), "nospy.firmware.unpack" in sys.modules, cache_url in fleet_run._CACHES

    pid = ray_local.get(ray_local.remote(warm).remote(url))
    assert pid != os.getpid()  # it ran in a worker process
    # a task after it, on the same (only idle) worker: the stack and the cache's engine are there
    probe = ray_local.remote(loaded)
    states = ray_local.get([probe.remote(url) for _ in range(4)])
    assert any(p == pid and modules and opened for p, modules, opened in states)


def test_fleet_cli(ray_local: Any, images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOSPY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NOSPY_DATABASE_URL", raising=False)
    listing = tmp_path / "releases.txt"
    listing.write_text(f"# the RX200 line\n\n{images / 'rx200-1.1.sqsh'}\n../{tmp_path.name}/junk.bin\n")
    (tmp_path / "junk.bin").write_bytes(b"not firmware at all\n" * 10)
    out = tmp_path / "fleet.json"
    agreement = str(EXAMPLES / "agreement.yaml")
    code = run(["fleet", "scan", str(listing), "--agreement", agreement, "--format", "json", "-o", str(out)])
    doc = json.loads(out.read_text())
    assert doc["agreement"] == "acme-rx200-in-2026"
    assert [Path(i["path"]).name for i in doc["images"]] == ["rx200-1.1.sqsh", "junk.bin"]
    rx, junk = doc["images"]
    assert {v["clause"] for v in rx["verdicts"]} >= {"accounts", "services", "backdoors"}
    # not firmware: shown as one file, with an error entry saying so, as `nospy scan` does
    assert junk["status"] == "pass" and "no known container" in junk["errors"][0]["message"]
    assert rx["status"] == "pass", rx
    assert code == 0
    assert (tmp_path / "data" / "nospy.db").is_file()
    table = tmp_path / "fleet.txt"
    assert run(["fleet", "scan", str(images), "--no-cache", "-o", str(table)]) == 1  # release 1.0 has its backdoor
    text = table.read_text()
    assert "rx200-1.0.sqsh" in text and "tew733gr.sqsh" in text and "backdoors" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "names no image"),
        (b"# only a comment\n", "names no image"),
        (b"missing.bin\n", "2: missing.bin: no such image file"),
        (b"\x00\x01binary", "binary data"),
        (b"ok\n\xff\xfe\n", "not UTF-8"),
        (b"a\x1bb\n", "control characters"),
    ],
)
def test_bad_list_files_are_input_errors(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "ok").write_bytes(b"x")
    data = content if message != "2: missing.bin: no such image file" else b"ok\n" + content
    with pytest.raises(InputError, match=message):
        parse_list(data, tmp_path, "list.txt")
    listing = tmp_path / "list.txt"
    listing.write_bytes(data)
    assert run(["fleet", "scan", str(listing)]) == 2


def test_list_paths_are_relative_to_the_list_and_kept_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"x")
    (tmp_path / "y.bin").write_bytes(b"y")
    got = parse_list(b"\xef\xbb\xbfa/x.bin\r\n  y.bin  \n# c\na/x.bin\n", tmp_path, "l")
    assert got == [tmp_path / "a" / "x.bin", tmp_path / "y.bin"]
    assert run(["fleet", "scan", str(tmp_path / "nothing-here")]) == 2
    (tmp_path / "empty").mkdir()
    assert run(["fleet", "scan", str(tmp_path / "empty")]) == 2


def _processes_naming(text: str) -> list[str]:
    """The command lines of this machine's processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in line:
                found.append(line)
    return found


def test_fleet_cli_starts_its_own_ray(images: Path, tmp_path: Path) -> None:
    """Without a Ray to join, the command starts one (in a thread, while the driver scans) and shuts it
    down: none of Ray's processes outlives the command."""
    pytest.importorskip("ray")
    out = tmp_path / "fleet.json"
    ray_dir = Path(tempfile.mkdtemp(prefix="nospy-ray-", dir="/tmp"))  # short: Ray's socket paths must fit
    env = {**os.environ, "NOSPY_DATA_DIR": str(tmp_path / "data"), "RAY_ADDRESS": "", "RAY_TMPDIR": str(ray_dir)}
    env.pop("NOSPY_DATABASE_URL", None)
    nospy = str(Path(sys.executable).with_name("nospy"))
    cmd = [nospy, "fleet", "scan", str(images), "--format", "json", "-o", str(out)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        deadline = time.monotonic() + 30  # Ray's workers and agents see their raylet go within seconds
        while (left := _processes_naming(str(ray_dir))) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left
        assert list(ray_dir.glob("ray/session_*")), "the command's Ray ran under RAY_TMPDIR"
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert proc.returncode == 1, proc.stderr  # release 1.0 has its backdoor
    doc = json.loads(out.read_text())
    assert [Path(i["path"]).name for i in doc["images"]] == ["rx200-1.0.sqsh", "rx200-1.1.sqsh", "tew733gr.sqsh"]
    assert doc["images"][1]["status"] == "pass"
    for path, got in zip(sorted(images.iterdir()), doc["images"], strict=True):
        single = scan_report(path)
        assert got["status"] == ("fail" if single.failed else "pass")
        assert got["severities"] == {k.value: v for k, v in Counter(f.severity for f in single.findings).items()}
    assert (tmp_path / "data" / "nospy.db").is_file()  # created and migrated by the driver


def test_only_a_ray_started_here_and_given_no_task_is_left_to_end_with_the_process(
    ray_local: Any, images: Path, tmp_path: Path
) -> None:
    """A Ray this process joined (here the module's; or a cluster) is never left to the process's end,
    and neither is one whose workers ran tasks: those are stopped, or disconnected from, as before."""
    from nospy.fleet.run import _Starting

    joined = _Starting(ray_local, None, None, None)
    joined.wait()
    assert not joined.abandon()  # already up in this process: not started here
    joined.stop()
    cluster = _Starting(ray_local, "127.0.0.1:1", None, None)
    assert not cluster.abandon()
    cluster.stop(quiet=True)
    # the joined Ray is still up and usable after both
    left: list[bool] = []
    result = scan_fleet(
        fleet_images(images)[:1], cache_url=f"sqlite:///{tmp_path / 'c.db'}", leave_ray=lambda: left.append(True)
    )
    assert [i.status for i in result.images] == ["fail"] and ray_local.is_initialized() and not left


def test_end_descendants_kills_the_whole_tree_and_nothing_else() -> None:
    """In a process of its own (here it would kill the tests' Ray): children and grandchildren end,
    the process itself and the rest of the machine go on."""
    marker = f"{10**6 + secrets.randbelow(10**6)}.25"  # seconds to sleep: a command line of their own
    code = (
        "import subprocess\n"
        "from nospy.fleet import end_descendants\n"
        f"sh = subprocess.Popen(['sh', '-c', 'sleep {marker} & sleep {marker} & echo forked; wait'],"
        " stdout=subprocess.PIPE, text=True)\n"
        "assert sh.stdout is not None and sh.stdout.readline() == 'forked\\n'\n"
        "end_descendants()\n"
        "print('still here')\n"
    )
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0 and done.stdout == "still here\n", done.stderr
        deadline = time.monotonic() + 10
        while (left := _processes_naming(marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_pace_tells_when_the_driver_alone_ends_before_a_local_ray_stops() -> None:
    from nospy.fleet.run import _RAY_STOP_SECONDS, _Pace

    pace = _Pace()
    pace.times = [30.0]  # the first image, analysed in full, says nothing of the cached ones after it
    assert not pace.alone(1)
    pace.times = [30.0, 0.1, 0.3]  # 0.2 s an image from the second on
    assert pace.alone(int(_RAY_STOP_SECONDS / 0.2))
    assert not pace.alone(int(_RAY_STOP_SECONDS / 0.2) + 1)
    assert pace.alone(0)


def test_a_digest_taken_ahead_is_used_only_for_the_file_it_was_taken_of(tmp_path: Path) -> None:
    """The driver hashes the next image while it scans one; an image replaced meanwhile (a release
    synced in) is hashed again, or its report would be cached under the replaced content's digest."""
    import hashlib

    from nospy.fleet.run import _hash, _unchanged

    image = tmp_path / "rx200-3.2.1.sqsh"
    image.write_bytes(b"release 3.2.1" * 1000)
    ahead = _hash(image)
    assert ahead is not None
    assert _unchanged(image, ahead) == hashlib.sha256(image.read_bytes()).hexdigest()
    replacement = tmp_path / "new.sqsh"
    replacement.write_bytes(b"release 3.2.2" * 1000)  # the same size
    replacement.replace(image)
    assert _unchanged(image, ahead) is None
    assert _hash(tmp_path / "missing.sqsh") is None
