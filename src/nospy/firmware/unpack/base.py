"""The handler interface: one small declarative class per container format, in the unblob style.

A handler declares its ``NAME``, the regular expressions of its magic (``PATTERNS``) and a ``DOC`` with
its references and limitations. The engine finds every place a pattern matches and asks the handler
``identify(data, offset, ctx)``: ``None`` means "not mine"; a `Chunk` says where the format ends and
what it holds, either a `Filesystem` (files with metadata, read lazily) or `Blob` payloads (kernel,
decompressed stream, partition) that the engine identifies again, one level deeper.

Everything is read from memory (the image is memory-mapped): no handler writes to disk.
"""

from __future__ import annotations

import io
import posixpath
import stat
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar, Literal, cast

from nospy.errors import InputError
from nospy.firmware.tree import EntryType, TreeIssue
from nospy.firmware.unpack.limits import Budget

__all__ = [
    "Blob",
    "Chunk",
    "Context",
    "Filesystem",
    "FlatFilesystem",
    "FormatError",
    "Handler",
    "Node",
    "Structs",
    "ViewIO",
    "mode_type",
]


class FormatError(InputError):
    """The bytes do not follow the format a handler expected."""


class Structs:
    """C struct declarations, compiled by ``dissect.cstruct`` when a handler first reads one.

    Compiling takes milliseconds per declaration and most images hold a few of the formats: a
    command that lists one image should not pay for all of them when it starts.
    """

    def __init__(self, endian: Literal["<", ">"], definitions: str) -> None:
        self._endian = endian
        self._definitions = definitions
        self._compiled: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._compiled is None:
            from dissect.cstruct import cstruct  # noqa: PLC0415 - the point of this class

            self._compiled = cstruct(endian=self._endian).load(self._definitions)
        return getattr(self._compiled, name)


@dataclass(frozen=True, slots=True)
class Node:
    """One filesystem object as its format stores it (before the tree places it)."""

    type: EntryType
    mode: int
    uid: int
    gid: int
    size: int
    link: str | None = None


_MODE_TYPES = {
    stat.S_IFDIR: EntryType.DIR,
    stat.S_IFLNK: EntryType.SYMLINK,
    stat.S_IFCHR: EntryType.CHARDEV,
    stat.S_IFBLK: EntryType.BLOCKDEV,
    stat.S_IFIFO: EntryType.FIFO,
    stat.S_IFSOCK: EntryType.SOCKET,
}


def mode_type(mode: int) -> EntryType:
    """The entry type of a POSIX ``st_mode``; unknown types are reported as regular files."""
    return _MODE_TYPES.get(stat.S_IFMT(mode), EntryType.FILE)


@dataclass
class Context:
    """What a handler may use while it identifies and unpacks: the budget and the issue list."""

    budget: Budget
    chain: str
    issues: list[TreeIssue] = field(default_factory=list)
    # searches a handler made in this container's data, by name, for its later candidates in the same
    # data to reuse (see archives.Zip): where the search started and what it found
    searches: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def issue(self, offset: int | None, message: str) -> None:
        self.issues.append(TreeIssue(self.chain, offset, message))


class Filesystem(ABC):
    """A filesystem found in the image: a directory walk and lazy file reads.

    Subclasses implement ``root``/``listdir``/``open_file``; the walk here stops at loops and at
    unreadable directories (reported, the rest still walked).
    """

    @abstractmethod
    def root(self) -> tuple[Node, object]:
        """The root directory and its handle."""

    @abstractmethod
    def listdir(self, ref: object) -> Iterable[tuple[str, Node, object]]:
        """The (name, node, handle) of each child of directory ``ref``."""

    @abstractmethod
    def open_file(self, ref: object) -> BinaryIO:
        """A stream over the content of regular file ``ref``."""

    def key(self, ref: object) -> object:
        """A value identifying a directory, to stop at loops (hard-linked directories)."""
        return id(ref)

    def storage_key(self, ref: object) -> str | None:
        """A digest of what regular file ``ref`` is decoded from, made without decoding it whole, or ``None``.

        Two files with the same storage key decode to the same bytes (a content cache then knows the
        content without decompressing it). The key names the handler's format and reader version, so
        keys of different formats never meet. ``None`` (the default): no such shortcut for this format.
        """
        return None

    def walk(self, ctx: Context) -> Iterator[tuple[str, Node, object]]:
        """Every (path, node, handle), parents before children; names that are not plain names are reported."""
        node, ref = self.root()
        yield "/", node, ref
        seen = {self.key(ref)}
        stack = [("/", ref)]
        while stack:
            path, dref = stack.pop()
            ctx.budget.check_time()
            try:
                children = list(self.listdir(dref))
            except InputError as exc:
                ctx.issue(None, f"{path}: directory unreadable: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - a library's parser failing on hostile bytes is a finding, not a crash
                ctx.issue(None, f"{path}: directory unreadable: {type(exc).__name__}: {exc}")
                continue
            for name, child, cref in children:
                if not name or name in {".", ".."} or "/" in name or "\0" in name:
                    ctx.issue(None, f"{path}: entry name {name!r} is not a plain name: skipped")
                    continue
                cpath = posixpath.join(path, name)
                yield cpath, child, cref
                if child.type is EntryType.DIR:
                    k = self.key(cref)
                    if k in seen:
                        ctx.issue(None, f"{cpath}: directory loop: not walked again")
                        continue
                    seen.add(k)
                    stack.append((cpath, cref))


class FlatFilesystem(Filesystem):
    """An archive whose members name their own paths (tar, cpio, zip, 7z): directories are implied.

    Member names are normalised as on a device: ``..`` stops at the root, so a traversal name lands
    inside the tree; the engine reports it.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, tuple[Node, object]] = {"/": (Node(EntryType.DIR, 0o755, 0, 0, 0), "/")}
        self._children: dict[str, dict[str, str]] = {"/": {}}
        self.renamed: list[tuple[str, str]] = []

    def add(self, name: str, node: Node, ref: object) -> None:
        path = posixpath.normpath("/" + name.replace("\0", "").lstrip("/"))
        while path.startswith("//"):
            path = path[1:]
        if ".." in name.split("/"):
            self.renamed.append((name, path))
        if path == "/":
            if node.type is EntryType.DIR:
                self._nodes["/"] = (node, "/")
            return
        parent = posixpath.dirname(path)
        self._ensure_dir(parent)
        if node.type is EntryType.DIR:
            self._children.setdefault(path, {})
            self._nodes[path] = (node, path)
        else:
            self._nodes[path] = (node, ref)
        self._children[parent][posixpath.basename(path)] = path

    def _ensure_dir(self, path: str) -> None:
        if path in self._children:
            return
        parent = posixpath.dirname(path)
        self._ensure_dir(parent)
        self._children[path] = {}
        self._nodes.setdefault(path, (Node(EntryType.DIR, 0o755, 0, 0, 0), path))
        self._children[parent][posixpath.basename(path)] = path

    def root(self) -> tuple[Node, object]:
        return self._nodes["/"]

    def key(self, ref: object) -> object:
        return ref

    def listdir(self, ref: object) -> Iterable[tuple[str, Node, object]]:
        assert isinstance(ref, str)  # noqa: S101 - directory handles of flat archives are their paths
        for name, path in sorted(self._children.get(ref, {}).items()):
            node, cref = self._nodes[path]
            yield name, node, cref

    def open_file(self, ref: object) -> BinaryIO:
        if isinstance(ref, bytes):
            return io.BytesIO(ref)
        raise FormatError("member content not available")


@dataclass(frozen=True, slots=True)
class Blob:
    """A payload inside a chunk (kernel, decompressed stream, partition) to identify one level deeper."""

    name: str  # how it appears in the chain, e.g. ``gzip`` or ``fit:kernel``
    data: memoryview
    offset: int = 0  # where it starts inside the chunk, for the chain


@dataclass(frozen=True, slots=True)
class Chunk:
    """A format found at ``start`` (inclusive) to ``end`` (exclusive) of its parent."""

    start: int
    end: int
    filesystem: Filesystem | None = None
    blobs: tuple[Blob, ...] = ()
    label: str | None = None  # overrides the handler's NAME in the chain (e.g. ``squashfs`` for a variant)


class Handler(ABC):
    """One container format. Subclasses only declare and parse; the engine does the rest."""

    NAME: ClassVar[str]
    PATTERNS: ClassVar[tuple[bytes, ...]]  # regular expressions over bytes, matched at the chunk start
    DOC: ClassVar[str]  # what it reads, references, limitations
    # A filesystem with its own paths (candidates for the device root).
    FILESYSTEM: ClassVar[bool] = False
    # Where the magic sits after the chunk start (tar's ``ustar`` at 257, ext's at 1080).
    OFFSET: ClassVar[int] = 0

    @abstractmethod
    def identify(self, data: memoryview, offset: int, ctx: Context) -> Chunk | None:
        """The chunk of this format starting at ``offset``, or ``None`` if the bytes there are not this format."""

    def peek(self, head: bytes, size: int) -> bytes | None:
        """For a compressed stream, the first ``size`` bytes (at most) it decodes to from ``head``, its own start.

        ``None`` for other formats: a container, whose magic alone says it holds files.
        """
        return None


class ViewIO(io.RawIOBase):
    """A read-only seekable stream over a memoryview (no copy of the whole view).

    The position is per thread: a filesystem reader shared by threads that each seek then read (the
    listing hashes files in parallel) never sees another thread's seek.
    """

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._local = threading.local()

    @property
    def _pos(self) -> int:
        return getattr(self._local, "pos", 0)

    @_pos.setter
    def _pos(self, value: int) -> None:
        self._local.pos = value

    @classmethod
    def stream(cls, view: memoryview) -> BinaryIO:
        """The view as the binary stream type the tree interface returns (it has read/seek/tell)."""
        return cast(BinaryIO, cls(view))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        chunk = self._view[self._pos : self._pos + len(out)]
        out[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else min(len(self._view), self._pos + size)
        start = min(self._pos, end)
        self._pos = max(end, self._pos)
        return bytes(self._view[start:end])

    def readall(self) -> bytes:
        return self.read(-1)
