"""The listing behind ``nospy ls``: every entry of an unpacked image with its content hash.

The JSON form is stable (fields may be added, none renamed): ``image`` (path, size, sha256),
``root`` (container chain of the filesystem shown at ``/``), ``entries`` and ``issues``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nospy.errors import NospyError
from nospy.firmware.tree import Entry, EntryType, FileTree, TreeIssue

__all__ = ["ListedEntry", "ListedImage", "ListedIssue", "Listing", "list_tree", "shown"]

_TYPE_BITS = {
    EntryType.FILE: stat.S_IFREG,
    EntryType.DIR: stat.S_IFDIR,
    EntryType.SYMLINK: stat.S_IFLNK,
    EntryType.CHARDEV: stat.S_IFCHR,
    EntryType.BLOCKDEV: stat.S_IFBLK,
    EntryType.FIFO: stat.S_IFIFO,
    EntryType.SOCKET: stat.S_IFSOCK,
}
_HASH_STEP = 1 << 20
_MAX_THREADS = 4


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListedEntry(_Model):
    path: str = Field(description="Absolute path as on the device (non-root parts under /@image/).")
    type: EntryType
    mode: str = Field(description="Permission bits in octal, with setuid/setgid/sticky, e.g. 4755.")
    uid: int
    gid: int
    size: int = Field(description="Bytes of content (regular files and symlinks), else 0.")
    sha256: str | None = Field(None, description="SHA-256 of a regular file's content; null if unreadable.")
    link: str | None = Field(None, description="Symlink target as stored.")
    chain: str = Field(description="Container chain of the filesystem holding the entry.")
    location: str = Field(description="chain!path: where the evidence lies.")

    @property
    def filemode(self) -> str:
        return stat.filemode(_TYPE_BITS[self.type] | int(self.mode, 8))


class ListedIssue(_Model):
    chain: str
    offset: int | None = Field(description="Byte offset inside the last container of the chain, if known.")
    message: str


class ListedImage(_Model):
    path: str
    size: int
    sha256: str


class Listing(_Model):
    image: ListedImage
    root: str | None = Field(description="Container chain of the filesystem shown at /, if one was recognised.")
    entries: list[ListedEntry]
    issues: list[ListedIssue]


def _digest(tree: FileTree, path: str) -> str:
    h = hashlib.sha256()
    with tree.open(path) as fh:
        while block := fh.read(_HASH_STEP):
            h.update(block)
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def shown(text: str) -> str:
    """A name as text: bytes that were not UTF-8 (kept as surrogates) written as ``\\xff`` escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _try_digest(tree: FileTree, entry: Entry) -> str | TreeIssue:
    try:
        return _digest(tree, entry.path)
    except NospyError as exc:
        return TreeIssue(entry.chain, None, f"{entry.path}: {exc}")


def list_tree(tree: FileTree, image: Path, root: str | None = None) -> Listing:
    """Every entry of ``tree``, regular files hashed; a file that cannot be read becomes an issue.

    Files are hashed by a few threads: decompression (zlib, lzma, zstd) and hashing release the GIL,
    so on a multi-core machine the listing keeps pace with native extractors.
    """
    issues = [ListedIssue(chain=shown(i.chain), offset=i.offset, message=shown(i.message)) for i in tree.issues]
    all_entries = list(tree.entries())
    files = [e for e in all_entries if e.type is EntryType.FILE]
    with ThreadPoolExecutor(max_workers=min(_MAX_THREADS, os.cpu_count() or 1)) as pool:
        results = dict(zip((e.path for e in files), pool.map(lambda e: _try_digest(tree, e), files), strict=True))
    entries = []
    for e in all_entries:
        digest = None
        result = results.get(e.path)
        if isinstance(result, TreeIssue):
            issues.append(ListedIssue(chain=shown(result.chain), offset=None, message=shown(result.message)))
        elif result is not None:
            digest = result
        entries.append(
            ListedEntry(
                path=shown(e.path),
                type=e.type,
                mode=f"{e.mode:04o}",
                uid=e.uid,
                gid=e.gid,
                size=e.size,
                sha256=digest,
                link=None if e.link is None else shown(e.link),
                chain=shown(e.chain),
                location=shown(e.location),
            )
        )
    return Listing(
        image=ListedImage(path=str(image), size=image.stat().st_size, sha256=_file_digest(image)),
        root=root,
        entries=entries,
        issues=issues,
    )
