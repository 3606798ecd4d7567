"""Fleet speed: 50 releases of one product line, scanned (a) by 50 independent ``nospy scan --no-cache``
processes and (b) by one ``nospy fleet scan`` with the content cache, starting from an empty cache.

    .venv/bin/python benchmarks/fleet_bench.py [--releases 50] [--work DIR]

The releases are the example root filesystem (nospy.firmware.rootfs), each one changing a few files
of the one before (cumulatively: a version file, an init script, the web page, and every tenth
release a rebuilt daemon), packed by Debian's mksquashfs. Target: (b) at least 10x faster than (a),
with both cores busy during (b): the CPU time of (b)'s whole process tree (the CLI, Ray's processes
and workers), sampled with psutil, divided by its wall time, also split into the driver, the Ray
workers and Ray's own services and agents. The load average is printed too: the machine may be
shared, and other work slows the two runs unevenly.

With the cache, (b) has little work left: the first release in full, then a few changed files per
release, about 8 s of CPU in all, while a local Ray's own start takes about 5 s of CPU and is up
when most releases are done. So (c) runs the same fleet scan without the cache, where every image
is analysed in full: there the driver and Ray's workers scan on both cores, and the CPU time of
the driver and workers over the wall time shows how much of the two cores went to scanning. Every
run's per-image results are compared, so the speed is not bought with different answers.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

from nospy.firmware.rootfs import build_example, plant

NOSPY = str(Path(sys.executable).with_name("nospy"))


def build_releases(work: Path, count: int) -> Path:
    root = build_example(work / "rootfs")
    daemon = (root / "usr/sbin/dropbear").read_bytes()
    images = work / "images"
    images.mkdir()
    for i in range(count):
        version = f"3.2.{i}"
        plant(root, "/etc/release", f"RX200 firmware {version}\n")
        plant(
            root,
            "/etc/init.d/S60httpd",
            f"#!/bin/sh\n# the web interface ships in a later release ({version})\n",
            0o755,
        )
        page = (root / "www/index.html").read_text() if (root / "www/index.html").exists() else ""
        plant(root, "/www/index.html", page + f"<!-- build {version} -->\n")
        if i % 10 == 0:  # a rebuilt daemon: a new binary to analyse in full
            plant(root, "/usr/sbin/dropbear", daemon + f"\x00build {version}\x00".encode(), 0o755)
        out = images / f"rx200-{version}.sqsh"
        pack = ["mksquashfs", str(root), str(out), "-all-root", "-noappend", "-quiet", "-no-progress"]
        subprocess.run(pack, check=True)
    return images


def _kind(proc: psutil.Process, root: int) -> str:
    """driver (the CLI), worker (a Ray worker: it runs the tasks) or ray (Ray's own services and agents)."""
    if proc.pid == root:
        return "driver"
    cmd = " ".join(proc.cmdline())
    if "default_worker.py" in cmd or (cmd.startswith("ray::") and "Agent" not in cmd):
        return "worker"
    return "ray"


class TreeCpu:
    """CPU seconds used by a process and all its descendants, sampled (finished children keep their last sample).

    Each process counts its own time only: a parent's ``children_*`` times are those of the children
    it reaped, which were sampled themselves (Ray's processes, reaped by the CLI at shutdown).
    """

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.last: dict[int, float] = {}
        self.kinds: dict[int, str] = {}
        self.samples: list[tuple[float, float]] = []  # (time, cumulative CPU seconds)
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    t = p.cpu_times()
                    self.last[p.pid] = t.user + t.system
                    self.kinds[p.pid] = _kind(p, self.root.pid)  # a worker's title changes once it has started
                except psutil.Error:
                    pass
            self.samples.append((time.perf_counter(), sum(self.last.values())))
            self._stop.wait(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.last.values())

    def by_kind(self) -> dict[str, float]:
        out = dict.fromkeys(("driver", "worker", "ray"), 0.0)
        for pid, cpu in self.last.items():
            out[self.kinds.get(pid, "ray")] += cpu
        return out

    def busy_share(self, cores: float) -> float:
        """Share of sampling intervals in which the tree used at least ``cores`` cores on average."""
        rates = [
            (c2 - c1) / (t2 - t1) for (t1, c1), (t2, c2) in zip(self.samples, self.samples[1:], strict=False) if t2 > t1
        ]
        return sum(r >= cores for r in rates) / len(rates) if rates else 0.0


def _load(avg: tuple[float, float, float]) -> str:
    """The machine's load average: other work on the machine slows both runs, not always alike."""
    return ", ".join(f"{x:.2f}" for x in avg)


def summary(report: dict) -> tuple[str, dict[str, int]]:
    counts = Counter(f["severity"] for f in report["findings"])
    failed = any(v["status"] == "fail" for v in report["verdicts"])
    return ("fail" if failed else "pass"), dict(counts)


def fleet_run(images: Path, out: Path, data: Path, title: str, *options: str) -> tuple[float, tuple[float, ...]]:
    """One ``nospy fleet scan`` of ``images`` with its data folder ``data``: prints its wall time and
    the CPU time of its process tree, by kind; returns the wall time and the load average after."""
    env = {**os.environ, "NOSPY_DATA_DIR": str(data)}
    env.pop("NOSPY_DATABASE_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [NOSPY, "fleet", "scan", str(images), *options, "--format", "json", "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    meter = TreeCpu(proc.pid)
    code = proc.wait()
    wall = time.perf_counter() - started
    cpu = meter.stop()
    assert code in (0, 1), f"nospy fleet scan {' '.join(options)}: exit {code}"
    cores = psutil.cpu_count() or 1
    kinds = meter.by_kind()
    print(
        f"{title}: {wall:.1f} s wall, {cpu:.1f} s CPU = {cpu / wall:.2f} cores busy on average of {cores};"
        f" {100 * meter.busy_share(min(cores, 2) - 0.5):.0f}% of samples above {min(cores, 2) - 0.5:.1f} cores"
    )
    print(
        f"    CPU: driver {kinds['driver']:.1f} s, Ray workers {kinds['worker']:.1f} s, Ray's own processes"
        f" {kinds['ray']:.1f} s; driver and workers (scanning) = {(kinds['driver'] + kinds['worker']) / wall:.2f}"
        " cores busy"
    )
    return wall, os.getloadavg()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=50)
    parser.add_argument("--work", type=Path, help="keep the images and reports here (default: a temporary folder)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="nospy-fleet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # nospy as pip installs it, byte-compiled (as dev.sh does for its editable install): otherwise every
    # process of (a) and every Ray worker compiles nospy's modules again where PYTHONDONTWRITEBYTECODE is set
    compileall.compile_dir(Path(build_example.__code__.co_filename).parents[1], quiet=1)
    started = time.perf_counter()
    images = build_releases(work, args.releases)
    paths = sorted(images.iterdir())
    print(f"{len(paths)} releases built and packed in {time.perf_counter() - started:.1f} s ({work})")

    # (a) one process per image, no cache
    reports = work / "reports"
    reports.mkdir(exist_ok=True)
    cpu_before = os.times()
    started = time.perf_counter()
    for p in paths:
        out = reports / f"{p.name}.json"
        code = subprocess.run([NOSPY, "scan", str(p), "--no-cache", "--format", "json", "-o", str(out)],
                              capture_output=True, check=False).returncode  # fmt: skip
        assert code in (0, 1), f"nospy scan {p}: exit {code}"
    t_single = time.perf_counter() - started
    load_single = os.getloadavg()
    cpu_after = os.times()
    cpu_single = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    print(f"(a) {len(paths)} x nospy scan --no-cache: {t_single:.1f} s wall, {cpu_single:.1f} s CPU")

    # (b) one fleet scan, with an empty content cache
    cores = psutil.cpu_count() or 1
    data = work / "cache"
    shutil.rmtree(data, ignore_errors=True)
    fleet_out = work / "fleet.json"
    t_fleet, load_fleet = fleet_run(images, fleet_out, data, "(b) nospy fleet scan (content cache, empty at start)")
    # (c) the same without the cache: every image analysed in full, so the work is what Ray fans out
    fleet_nocache = work / "fleet-no-cache.json"
    t_nocache, _ = fleet_run(images, fleet_nocache, data, "(c) nospy fleet scan --no-cache", "--no-cache")
    print(
        f"    (c) against (a): {t_single / t_nocache:.1f}x (one process scanning on {cores} cores, instead of"
        f" {len(paths)} processes one after another)"
    )
    print(f"load average (1, 5, 15 min) after (a): {_load(load_single)}; after (b): {_load(load_fleet)}")

    for out in (fleet_out, fleet_nocache):
        fleet = {Path(i["path"]).name: i for i in json.loads(out.read_text())["images"]}
        for p in paths:
            status, counts = summary(json.loads((reports / f"{p.name}.json").read_text()))
            got = fleet[p.name]
            assert (got["status"], got["severities"]) == (status, counts), (p.name, got, status, counts)
    print(f"per-image verdicts and counts by severity: the same in (a), (b) and (c) for all {len(paths)} images")
    ratio = t_single / t_fleet
    print(f"speed-up: {ratio:.1f}x (target: 10x) -> {'met' if ratio >= 10 else 'NOT met'}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
