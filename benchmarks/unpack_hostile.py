"""Hostile data: how unpacking time grows on data dense with one handler's magic.

    python benchmarks/unpack_hostile.py [--small BYTES] [--factor N]

For each handler, its first pattern's smallest match (found by hypothesis) is repeated to fill
``--small`` bytes and then ``--factor`` times as many, and ``open_data`` unpacks both. Time that
grows with the size is fine; time that grows with its square (``factor**2``) is what lets a small
hostile upload hold a check until the time limit. Prints seconds at both sizes and the growth.
"""

from __future__ import annotations

import argparse
import re
import time

from hypothesis import find
from hypothesis import strategies as st

from nospy.firmware.unpack import Limits, open_data
from nospy.firmware.unpack.handlers import HANDLERS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=100_000, help="bytes of the smaller input (default 100,000)")
    parser.add_argument("--factor", type=int, default=4, help="the larger input is this many times as big")
    args = parser.parse_args()
    limits = Limits(timeout=600)
    print(f"{'handler':10s} {'magic':>12s} {args.small:>9d} B {args.small * args.factor:>9d} B  growth")
    for handler in HANDLERS:
        pattern = re.compile(handler.PATTERNS[0], re.DOTALL)
        magic = find(st.from_regex(pattern, fullmatch=True), lambda _: True)
        times = []
        for size in (args.small, args.small * args.factor):
            data = magic * (size // len(magic))
            began = time.perf_counter()
            open_data(data, "hostile.bin", limits)
            times.append(time.perf_counter() - began)
        growth = times[1] / times[0] if times[0] else float("inf")
        flag = "  <- superlinear" if growth > 1.5 * args.factor else ""
        print(f"{handler.NAME:10s} {magic[:6].hex():>12s} {times[0]:9.2f} s {times[1]:9.2f} s  {growth:5.1f}x{flag}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
