from __future__ import annotations

import os
from pathlib import Path

import pytest

from nospy.errors import InputError
from nospy.firmware.tree import DirectoryTree, EntryType, normalise


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc" / "init.d").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "bin" / "busybox").write_bytes(b"\x7fELF")
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "etc" / "init.d" / "rcS").symlink_to("../../bin/../etc/passwd")
    (root / "etc" / "abs").symlink_to("/etc/passwd")  # absolute: means the device's /etc/passwd
    (root / "etc" / "escape").symlink_to("../../../../../../etc/hostname")  # .. stops at the device root
    (root / "etc" / "loop1").symlink_to("loop2")
    (root / "etc" / "loop2").symlink_to("loop1")
    secret = tmp_path / "host-secret"
    secret.write_text("host file")
    (root / "etc" / "hostlink").symlink_to(secret)  # absolute host path: must not be read
    return root


def test_entries_and_types(rootfs: Path) -> None:
    tree = DirectoryTree(rootfs, "rootfs")
    entries = {e.path: e for e in tree.entries()}
    assert entries["/"].type is EntryType.DIR
    assert entries["/bin/sh"].type is EntryType.SYMLINK and entries["/bin/sh"].link == "busybox"
    assert entries["/etc/passwd"].size == len("root:x:0:0:root:/root:/bin/sh\n")
    assert entries["/etc/passwd"].location == "rootfs!/etc/passwd"


def test_symlinks_resolve_inside_the_tree(rootfs: Path) -> None:
    tree = DirectoryTree(rootfs)
    assert tree.resolve("/bin/sh") == "/bin/busybox"
    assert tree.resolve("/etc/init.d/rcS") == "/etc/passwd"
    assert tree.resolve("/etc/abs") == "/etc/passwd"
    assert tree.read("/etc/abs").startswith(b"root:")
    assert tree.resolve("/etc/escape") is None  # /etc/hostname is not in the tree
    assert tree.resolve("/etc/loop1") is None
    assert tree.resolve("/etc/hostlink") is None
    with pytest.raises(InputError):
        tree.read("/etc/hostlink")
    with pytest.raises(InputError):
        tree.read("/../../" + os.fspath(rootfs.parent / "host-secret"))


def test_normalise() -> None:
    assert normalise("etc//passwd") == "/etc/passwd"
    assert normalise("/../../etc/./x/../passwd") == "/etc/passwd"
