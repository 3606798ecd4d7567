"""The listing behind ``nospy ls``: every entry of an unpacked image with its content hash.

The JSON form is stable (fields may be added, none renamed): ``image`` (path, size, sha256),
``root`` (container chain of the filesystem shown at ``/``), ``entries`` and ``issues``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
_BATCH = 16


# Frozen dataclasses rather than pydantic models: the listing is only written, never read back, and
# ``nospy ls`` starts faster without importing pydantic. `Listing.to_json` keeps the JSON form.


@dataclass(frozen=True, slots=True)
class ListedEntry:
    path: str  # absolute path as on the device (non-root parts under /@image/)
    type: EntryType
    mode: str  # permission bits in octal, with setuid/setgid/sticky, e.g. 4755
    uid: int
    gid: int
    size: int  # bytes of content (regular files and symlinks), else 0
    sha256: str | None  # SHA-256 of a regular file's content; None if unreadable
    link: str | None  # symlink target as stored
    chain: str  # container chain of the filesystem holding the entry
    location: str  # chain!path: where the evidence lies

    @property
    def filemode(self) -> str:
        return stat.filemode(_TYPE_BITS[self.type] | int(self.mode, 8))


@dataclass(frozen=True, slots=True)
class ListedIssue:
    chain: str
    offset: int | None  # byte offset inside the last container of the chain, if known
    message: str


@dataclass(frozen=True, slots=True)
class ListedImage:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Listing:
    image: ListedImage
    root: str | None  # container chain of the filesystem shown at /, if one was recognised
    entries: list[ListedEntry]
    issues: list[ListedIssue]

    def to_dict(self) -> dict[str, Any]:
        """The listing as JSON-ready values; fields in declaration order (``dataclasses.asdict``
        deep-copies every value, several times slower on a listing of thousands of entries)."""
        return {
            "image": _fields(self.image),
            "root": self.root,
            "entries": [_fields(e) for e in self.entries],
            "issues": [_fields(i) for i in self.issues],
        }

    def to_json(self, indent: int | None = None) -> str:
        """The stable JSON form (UTF-8 text, not ASCII-escaped)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)


def _fields(item: ListedEntry | ListedIssue | ListedImage) -> dict[str, Any]:
    return {f: getattr(item, f) for f in item.__slots__}


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
    # a few files per task: thousands of small files would otherwise cost more in task hand-over than in hashing
    batches = [files[i : i + _BATCH] for i in range(0, len(files), _BATCH)]
    with ThreadPoolExecutor(max_workers=min(_MAX_THREADS, os.cpu_count() or 1)) as pool:
        image_digest = pool.submit(_file_digest, image)
        digests = pool.map(lambda batch: [_try_digest(tree, e) for e in batch], batches)
        results = dict(zip((e.path for e in files), (d for batch in digests for d in batch), strict=True))
        image_sha256 = image_digest.result()
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
        image=ListedImage(path=str(image), size=image.stat().st_size, sha256=image_sha256),
        root=root,
        entries=entries,
        issues=issues,
    )
