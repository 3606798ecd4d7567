"""Components and their versions, from banners, file names and kernel modules."""

from __future__ import annotations

from pathlib import Path

from nospy.firmware.components import COMPONENTS
from nospy.firmware.context import Context
from nospy.firmware.rootfs import plant
from nospy.firmware.tree import DirectoryTree


def test_versions_from_real_programs_and_modules(tmp_path: Path) -> None:
    root = tmp_path / "r"
    for src in ("/bin/busybox", "/usr/sbin/dropbear"):
        plant(root, src, Path(src).read_bytes(), 0o755)
    module = Path("/usr/bin/dropbearkey").read_bytes() + b"\x00vermagic=2.6.33.2 mod_unload MIPS32_R2 32BIT \x00"
    plant(root, "/lib/modules/ifresetcnt.ko", module)
    plant(root, "/lib/libuClibc-0.9.30.1.so", b"\x7fELF")
    ctx = Context(DirectoryTree(root), None)
    assert COMPONENTS.run(ctx) == []
    found = {(c.name, c.version, c.path) for c in ctx.facts["components"]}
    busybox = next(v for n, v, _ in found if n == "busybox")
    dropbear = next(v for n, v, _ in found if n == "dropbear")
    assert busybox.startswith("1.") and dropbear.startswith("20")
    assert ("linux", "2.6.33.2", "/lib/modules/ifresetcnt.ko") in found
    assert ("uclibc", "0.9.30.1", "/lib/libuClibc-0.9.30.1.so") in found
