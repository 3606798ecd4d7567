"""Run one fuzz target under atheris (coverage-guided): ``python fuzz/run.py TARGET [libFuzzer args]``.

atheris is not a dependency of nospy; install it into the virtual environment to use this.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]

    with atheris.instrument_imports():
        import targets

        from nospy.errors import NospyError

    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        print(f"usage: {sys.argv[0]} TARGET [libFuzzer args]; targets: {', '.join(targets.TARGETS)}")
        sys.exit(2)
    target = targets.TARGETS[sys.argv.pop(1)]

    def one(data: bytes) -> None:
        with contextlib.suppress(NospyError):
            target(data)

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
