"""Firmware speed: full ``nospy scan`` (unpack + every rule) against ``unblob`` merely extracting, side by side.

    .venv/bin/python benchmarks/firmware_speed.py [IMAGE] [--unblob PATH] [--runs N]

Without IMAGE it builds one: the example root filesystem (Debian's BusyBox, Dropbear, OpenSSH,
OpenSSL and their libraries) as an ext4 image made by ``mke2fs -d`` (e2fsprogs), a format both tools
read without extra helpers (unblob extracts ext4 with debugfs). Each tool runs N times in the same
process tree; the best time of each is compared. unblob is not a dependency of nospy: install it in
its own virtual environment and pass ``--unblob``. nospy needs the unpacker to read image files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nospy.firmware.rootfs import build_example
from nospy.firmware.scan import scan_report


def _build_image(work: Path) -> Path:
    root = build_example(work / "rootfs")
    image = work / "rx200.ext4"
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), "-L", "rx200", str(image), "64M"], check=True)
    return image


def _best(runs: int, job: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        job()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", nargs="?", type=Path)
    parser.add_argument("--unblob", default=shutil.which("unblob"), help="the unblob command (default: on PATH)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nospy-speed-"))
    image = args.image or _build_image(work)
    print(f"image: {image} ({image.stat().st_size / 1e6:.1f} MB)")

    def nospy_scan() -> None:
        report = scan_report(image)
        nospy_scan.findings = len(report.findings)  # type: ignore[attr-defined]

    t_nospy = _best(args.runs, nospy_scan)
    print(f"nospy scan (unpack + all rules): {t_nospy:.2f} s, {nospy_scan.findings} findings")  # type: ignore[attr-defined]
    command = [str(Path(sys.executable).parent / "nospy"), "scan", str(image), "--format", "json"]

    def nospy_command() -> None:
        # the whole command: interpreter start, imports and the report written (exit 1: a clause fails)
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        if done.returncode not in {0, 1}:
            raise SystemExit(f"nospy scan failed with {done.returncode}")

    t_command = _best(args.runs, nospy_command)
    print(f"nospy scan command (JSON report): {t_command:.2f} s")
    if not args.unblob:
        print("unblob: not installed (pip install unblob in its own environment, then --unblob PATH)")
        return 0

    def unblob_extract() -> None:
        out = work / "unblob-out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        # in the scratch folder: unblob writes unblob.log into its working directory
        subprocess.run([args.unblob, "-e", str(out), str(image)], check=True, capture_output=True, cwd=work)

    t_unblob = _best(args.runs, unblob_extract)
    print(f"unblob extract only:             {t_unblob:.2f} s")
    print(f"speed-up: {t_unblob / t_nospy:.1f}x in process, {t_unblob / t_command:.1f}x the command (target: 3x)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other work skews the times)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
