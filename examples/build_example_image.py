"""Build the example image that ``nospy demo`` checks: ACME RX200's root filesystem with a planted backdoor.

    .venv/bin/python examples/build_example_image.py [OUT]   (default: examples/rx200-rootfs)

The image is made from this machine's Debian packages (busybox-static, dropbear-bin, openssh-client,
openssl; see debian-packages.txt): real programs, a BusyBox inittab and init scripts, and one planted
backdoor, ``/etc/init.d/S90diag``, which starts ``telnetd -p 2323 -l /bin/sh`` at boot. With
mksquashfs (squashfs-tools) it also writes ``OUT.squashfs``, the same tree as a firmware image.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from nospy.firmware.rootfs import build_example


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "rx200-rootfs"
    if out.exists():
        shutil.rmtree(out)
    build_example(out)
    print(f"wrote {out}")
    if shutil.which("mksquashfs"):
        image = out.with_suffix(".squashfs")
        image.unlink(missing_ok=True)
        subprocess.run(
            ["mksquashfs", str(out), str(image), "-all-root", "-noappend", "-quiet", "-no-progress", "-comp", "xz"],
            check=True,
        )
        print(f"wrote {image}")


if __name__ == "__main__":
    main()
