"""The virtual file tree every firmware check reads: one interface over any unpacked image.

Paths are as on the running device: absolute, ``/``-separated, normalised. Each entry carries the
container chain it came from (``image.bin!uimage@0x40!squashfs@0x0``), so a finding can say exactly
where its evidence lies. Symlinks are resolved inside the tree only: a link can never lead out of it.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from nospy.errors import InputError

__all__ = ["DirectoryTree", "Entry", "EntryType", "FileTree", "TreeIssue", "normalise"]

MAX_SYMLINK_HOPS = 40  # as Linux's MAXSYMLINKS


class EntryType(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    CHARDEV = "chardev"
    BLOCKDEV = "blockdev"
    FIFO = "fifo"
    SOCKET = "socket"


@dataclass(frozen=True, slots=True)
class Entry:
    path: str  # absolute device path
    type: EntryType
    mode: int  # permission bits, with setuid/setgid/sticky
    uid: int
    gid: int
    size: int
    chain: str  # container chain of the filesystem holding this entry
    link: str | None = None  # symlink target, as stored

    @property
    def location(self) -> str:
        return f"{self.chain}!{self.path}"


@dataclass(frozen=True, slots=True)
class TreeIssue:
    """A part of the image that could not be read; the rest of the tree is still there."""

    chain: str
    offset: int | None
    message: str


def normalise(path: str) -> str:
    """``path`` as an absolute device path; ``..`` stops at the root, as on the device."""
    return posixpath.normpath("/" + path.lstrip("/")).replace("//", "/")


@dataclass
class FileTree(ABC):
    """A read-only tree of device paths. Implementations: `DirectoryTree`, the unpacker's image tree."""

    name: str
    issues: list[TreeIssue] = field(default_factory=list)

    @abstractmethod
    def entries(self) -> Iterator[Entry]:
        """Every entry, parents before children."""

    @abstractmethod
    def get(self, path: str) -> Entry | None:
        """The entry at ``path`` itself (symlinks not followed)."""

    @abstractmethod
    def read(self, path: str, limit: int | None = None) -> bytes:
        """The content of the regular file at ``path`` (after resolving symlinks), at most ``limit`` bytes."""

    def resolve(self, path: str) -> str | None:
        """``path`` with every symlink followed inside the tree; ``None`` if it dangles or loops."""
        parts = [p for p in normalise(path).split("/") if p]
        resolved = "/"
        hops = 0
        while parts:
            part = parts.pop(0)
            candidate = normalise(posixpath.join(resolved, part))
            entry = self.get(candidate)
            if entry is None:
                return None
            if entry.type is EntryType.SYMLINK and entry.link is not None:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    return None
                base = "/" if entry.link.startswith("/") else resolved
                parts = [p for p in normalise(posixpath.join(base, entry.link)).split("/") if p] + parts
                resolved = "/"
                continue
            resolved = candidate
        return resolved

    def open(self, path: str) -> BinaryIO:
        """A stream over the regular file at ``path`` (after resolving symlinks).

        Implementations that read lazily (the image tree) override this so large files need not be in
        memory at once; the default reads the whole file.
        """
        return io.BytesIO(self.read(path))

    def storage_key(self, path: str) -> str | None:
        """A digest of how the regular file at ``path`` is stored in its container, or ``None``.

        Files with equal keys have equal contents; see `nospy.firmware.unpack.base.Filesystem.storage_key`.
        """
        return None

    def sha256(self, path: str) -> str:
        h = hashlib.sha256()
        with self.open(path) as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        return h.hexdigest()

    def files(self) -> Iterator[Entry]:
        return (e for e in self.entries() if e.type is EntryType.FILE)


_MODE_TYPES = (
    (stat.S_ISLNK, EntryType.SYMLINK),
    (stat.S_ISDIR, EntryType.DIR),
    (stat.S_ISREG, EntryType.FILE),
    (stat.S_ISCHR, EntryType.CHARDEV),
    (stat.S_ISBLK, EntryType.BLOCKDEV),
    (stat.S_ISFIFO, EntryType.FIFO),
    (stat.S_ISSOCK, EntryType.SOCKET),
)


class DirectoryTree(FileTree):
    """An already extracted root filesystem in a folder, read with lstat only (links never followed)."""

    def __init__(self, root: Path, name: str | None = None) -> None:
        super().__init__(name or root.name)
        if not root.is_dir():
            raise InputError(f"{root}: not a directory")
        self.root = root.resolve()

    def _host(self, path: str) -> Path:
        return self.root / normalise(path).lstrip("/")

    def _entry(self, path: str, st: os.stat_result) -> Entry:
        kind = next(t for test, t in _MODE_TYPES if test(st.st_mode))
        link = str(self._host(path).readlink()) if kind is EntryType.SYMLINK else None
        return Entry(
            path,
            kind,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            st.st_size if kind is EntryType.FILE else 0,
            self.name,
            link,
        )

    def entries(self) -> Iterator[Entry]:
        yield self._entry("/", self.root.lstat())
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            rel = "/" + os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            dirnames.sort()
            for name in sorted([*dirnames, *filenames]):
                path = normalise(posixpath.join(rel, name))
                try:
                    yield self._entry(path, self._host(path).lstat())
                except OSError as exc:
                    self.issues.append(TreeIssue(self.name, None, f"{path}: {exc.strerror or exc}"))

    def get(self, path: str) -> Entry | None:
        try:
            return self._entry(normalise(path), self._host(path).lstat())
        except OSError:
            return None

    def read(self, path: str, limit: int | None = None) -> bytes:
        real = self.resolve(path)
        entry = self.get(real) if real else None
        if entry is None or entry.type is not EntryType.FILE:
            raise InputError(f"{self.name}!{normalise(path)}: not a regular file in the tree")
        # resolved inside the tree, and the final component is a regular file (lstat): no escape
        with self._host(entry.path).open("rb") as fh:
            return fh.read(-1 if limit is None else limit)
