"""Firmware accuracy: build the planted-backdoor and clean corpus, scan every image, print the score.

    .venv/bin/python benchmarks/firmware_accuracy.py [--keep DIR] [--containers]

A planted case counts as found when every (rule, path) it expects is among the findings; a clean
image passes when it has no high or critical finding. The corpus is defined in
tests/firmware_corpus.py (one place for the suite and this benchmark).

With ``--containers`` each image is first packed into a firmware container by the Debian tool that
makes it (mksquashfs, mke2fs, cpio+gzip, tar+xz, mkfs.jffs2 and mkfs.cramfs in both byte orders,
mkimage around squashfs, mkfs.ubifs+ubinize: ``firmware_corpus.CONTAINERS``), the formats taken in
turn, and scanned through the unpacker (``nospy.firmware.unpack.open_image``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import firmware_corpus as corpus  # noqa: E402 - the corpus lives beside the tests
from nospy.agreement.load import parse_yaml  # noqa: E402
from nospy.findings import Severity  # noqa: E402
from nospy.firmware.geo import RangeTable  # noqa: E402
from nospy.firmware.rootfs import build_base  # noqa: E402
from nospy.firmware.scan import scan_tree  # noqa: E402
from nospy.firmware.tree import DirectoryTree  # noqa: E402


def _tree(root: Path, index: int, containers: bool) -> tuple[object, str]:
    """The tree to scan: the folder itself, or the folder packed into the next container format."""
    if not containers:
        return DirectoryTree(root), "folder"
    name = corpus.CONTAINERS[index % len(corpus.CONTAINERS)][0]
    out = corpus.pack(root, name)
    unpack = importlib.import_module("nospy.firmware.unpack")
    return unpack.open_image(out), name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="build the corpus here and keep it")
    parser.add_argument("--containers", action="store_true", help="pack each image into a firmware format first")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="nospy-accuracy-"))
    base = build_base(work / "base")
    agreement = parse_yaml(corpus.AGREEMENT)
    geo = RangeTable.parse(corpus.GEO_CSV, "corpus-geo.csv")
    found = 0
    expected_total = 0
    failures: list[str] = []
    started = time.perf_counter()
    formats: set[str] = set()
    for i, case in enumerate(corpus.CASES):
        root = corpus.build_case(base, work / case.name, case.build)
        tree, fmt = _tree(root, i, args.containers)
        formats.add(fmt)
        result = scan_tree(tree, agreement if case.agreement else None, geo=geo if case.geo else None)  # type: ignore[arg-type]
        got = {(f.rule, f.path) for f in result.findings}
        for want in case.expect:
            expected_total += 1
            if want in got:
                found += 1
            else:
                failures.append(f"MISSED {case.name}: {want[0]} at {want[1]}")
        print(f"{'ok  ' if set(case.expect) <= got else 'MISS'} {case.name} ({fmt})")
    clean_bad = 0
    for j, (name, build) in enumerate(corpus.CLEAN):
        root = corpus.build_case(base, work / name, build)
        tree, fmt = _tree(root, j, args.containers)
        for agreement_or_none in (None, agreement):
            result = scan_tree(tree, agreement_or_none)  # type: ignore[arg-type]
            bad = [f for f in result.findings if f.severity in (Severity.HIGH, Severity.CRITICAL)]
            clean_bad += len(bad)
            failures += [f"FALSE POSITIVE {name}: {f.rule} {f.path}:{f.line} {f.message}" for f in bad]
        print(f"{'ok  ' if not clean_bad else 'FP  '} {name} ({fmt})")
    elapsed = time.perf_counter() - started
    rules = {rule for case in corpus.CASES for rule, _ in case.expect}
    print()
    print(f"planted images: {len(corpus.CASES)}, expected findings: {expected_total}, found: {found} "
          f"({100 * found / expected_total:.1f}%)")  # fmt: skip
    print(f"rules exercised by planted cases: {len(rules)}; images scanned as: {', '.join(sorted(formats))}")
    print(f"clean images: {len(corpus.CLEAN)} (each scanned with and without the agreement)")
    print(f"high/critical findings on clean images: {clean_bad}")
    print(f"time: {elapsed:.1f} s for {len(corpus.CASES) + len(corpus.CLEAN)} images (build + scan)")
    for line in failures:
        print(line)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
