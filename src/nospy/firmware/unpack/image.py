"""`open_image`: identify and unpack every container of a firmware image into one `ImageTree`.

The engine memory-maps the image and finds every offset where a handler's magic matches (all magics
at once, window by window, with YARA-X), asks the handlers there, and recurses into what they
return to ``Limits.max_depth``: payloads (a kernel, a decompressed stream, a UBI volume) and files of a
filesystem named as images or archives. Nothing is written to disk (squashfs 1-3 aside, see
`handlers.squashfs_legacy`). The filesystem that looks most like a device root
(``/etc``, ``/bin``, ``/sbin/init`` ...) is placed at ``/``; every other filesystem and every payload
that is not a filesystem (kernel, decompressed stream) is placed under ``/@image/``, named by its
container chain, e.g. ``/@image/uimage@0x0/lzma@0x40/data``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import mmap
import os
import posixpath
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, cast

import yara_x

from nospy.errors import InputError
from nospy.firmware.tree import Entry, EntryType, FileTree, TreeIssue, normalise
from nospy.firmware.unpack.base import Chunk, Context, Filesystem, FormatError, Handler, Node, ViewIO
from nospy.firmware.unpack.limits import Budget, LimitError, Limits

__all__ = ["PREFIX", "ImageTree", "open_data", "open_image", "watchdog"]

PREFIX = "/@image"
# Paths whose presence marks a device's root filesystem, each worth one point.
_ROOT_MARKERS = (
    "/etc",
    "/bin",
    "/sbin",
    "/lib",
    "/usr",
    "/etc/passwd",
    "/etc/inittab",
    "/etc/init.d",
    "/init",
    "/sbin/init",
    "/bin/sh",
    "/bin/busybox",
)
_MIN_ROOT_SCORE = 3
# A handler that fails this often in one container is not asked there again (a damaged UBI image
# would otherwise be tried at each of its thousands of erase blocks).
_MAX_FAILURES = 3
_ALARM_REPEAT = 0.5  # seconds between repeated time-limit alarms
_WINDOW = 1 << 16  # bytes one magic search covers: all its matches are listed, though a chunk may skip them
_LONGEST_MAGIC = 4096  # no pattern matches more bytes than this
_DENSE_SECONDS = 0.01  # CPU time YARA-X takes on a window dense with magics: 40 ms (usually: 0.3 ms)
# Files inside filesystems unpacked in turn, by name (see _Engine._nested_files): images and archives,
# perhaps compressed, and boot files; not every .gz (a root filesystem holds hundreds of gzip'd docs).
_NESTED_NAME = re.compile(
    r"(?:\.(?:bin|img|image|sqfs|squashfs|jffs2|ubi|ubifs|ext[234]|cramfs|romfs|yaffs2?|trx|itb|fit|uimage|chk"
    r"|cpio|tar|zip|7z|ipk)(?:\.(?:gz|xz|lzma|bz2|zst|lz4|lzo))?|\.(?:tgz|tbz2?|txz))$"
    r"|^(?:uimage|zimage|initrd|initramfs|rootfs|vmlinu)",
    re.IGNORECASE,
)
_MIN_NESTED = 64
# What a filesystem's file shows of itself before it is unpacked: tar's magic sits at 257 and ext's at
# 1080, and reading less than a block costs the same as reading the block.
_HEAD = 4096
# Threads reading files' first bytes ahead of the magic checks.
_READ_THREADS = 4
_BATCH = 16
# Files searched for containers at every offset (carved) although nothing is found at their start:
# vendor blobs under a firmware folder, and large files of no known type.
_FIRMWARE_DIRS = ("/lib/firmware/", "/usr/lib/firmware/", "/etc/firmware/", "/firmware/")
_CARVE_SIZE = 256 << 10
# Starts of file types that hold no container to carve (programs, images, databases, message catalogues,
# time zones, fonts, WebAssembly): a large one is not read to its end.
_KNOWN_TYPES = (
    b"\x7fELF",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"SQLite format 3\0",
    b"%PDF",
    b"\xde\x12\x04\x95",
    b"\x95\x04\x12\xde",
    b"TZif",
    b"\x00\x01\x00\x00\x00",
    b"OTTO",
    b"wOFF",
    b"\x00asm",
)


class _Heads:
    """The first `_HEAD` bytes of files of one filesystem (or why each could not be read), read ahead, in order.

    Reading a file's first bytes decompresses its first block (or its fragment): the engine's reader
    threads do that while its own thread walks and matches magics, since decompression releases the
    GIL. The blocks stay in the filesystem's cache for whoever reads the file whole later (the
    listing's hashes).
    """

    def __init__(self, pool: ThreadPoolExecutor, fs: Filesystem) -> None:
        self._pool = pool
        self._fs = fs
        self._batch: list[object] = []
        self._futures: list[Future[list[bytes | Exception]]] = []

    def add(self, ref: object) -> None:
        self._batch.append(ref)
        if len(self._batch) == _BATCH:  # a few files per task: thousands of small files would otherwise
            self.flush()  # cost more in task hand-over than in reading

    def flush(self) -> None:
        if self._batch:
            self._futures.append(self._pool.submit(_read_heads, self._fs, self._batch))
            self._batch = []

    def __iter__(self) -> Iterator[bytes | Exception]:
        for future in self._futures:
            yield from future.result()  # waiting in the engine's thread, which the watchdog's alarm interrupts

    def cancel(self) -> None:
        """Heads not read yet are not read; those read are let go."""
        for future in self._futures:
            future.cancel()
        self._futures = []


class _Out:
    """What the engine finds, in order: issues, filesystems, payloads.

    Where the rest of a chunk is to go (see `_Engine.scan`), each list holds that rest's own `_Out`,
    filled later: the three lists are read flat (`flat`) in the order the engine would have found
    things had it done each chunk whole at once.
    """

    __slots__ = ("blobs", "issues", "mounts")

    def __init__(self) -> None:
        self.issues: list[TreeIssue | _Out] = []
        self.mounts: list[_Mount | _Out] = []
        self.blobs: list[tuple[str, memoryview] | _Out] = []

    def reserve(self) -> _Out:
        """A place, after everything so far, for what is found later."""
        later = _Out()
        self.issues.append(later)
        self.mounts.append(later)
        self.blobs.append(later)
        return later

    def flat(self) -> tuple[list[TreeIssue], list[_Mount], list[tuple[str, memoryview]]]:
        issues: list[TreeIssue] = []
        mounts: list[_Mount] = []
        blobs: list[tuple[str, memoryview]] = []
        self._flatten(issues, mounts, blobs)
        return issues, mounts, blobs

    def _flatten(self, issues: list[TreeIssue], mounts: list[_Mount], blobs: list[tuple[str, memoryview]]) -> None:
        for issue in self.issues:
            if isinstance(issue, _Out):
                issue._flatten(issues, [], [])
            else:
                issues.append(issue)
        for mount in self.mounts:
            if isinstance(mount, _Out):
                mount._flatten([], mounts, [])
            else:
                mounts.append(mount)
        for blob in self.blobs:
            if isinstance(blob, _Out):
                blob._flatten([], [], blobs)
            else:
                blobs.append(blob)

    @staticmethod
    def any_mount(mounts: list[_Mount | _Out]) -> bool:
        return any(not isinstance(m, _Out) or _Out.any_mount(m.mounts) for m in mounts)


@dataclass(slots=True)
class _Later:
    """What `_Engine.scan` does of a chunk once every chunk of its data has been found."""

    chunk: Chunk
    chain: str
    depth: int
    nodes: list[tuple[str, Node, object]]  # its filesystem's entries, walked
    heads: _Heads | None  # the first bytes of that filesystem's files, being read
    out: _Out  # where what the rest finds goes
    begun: bool = False  # its rest was begun, or its payloads kept

    def cancel(self) -> None:
        if self.heads is not None:
            self.heads.cancel()


@dataclass(frozen=True, slots=True)
class _Mount:
    chain: str
    fs: Filesystem
    rootable: bool
    nodes: list[tuple[str, Node, object]]


class _DataFile(Filesystem):
    """A payload that is not a filesystem, shown as one file."""

    def __init__(self, data: memoryview) -> None:
        self.data = data

    def root(self) -> tuple[Node, object]:
        return Node(EntryType.FILE, 0o444, 0, 0, len(self.data)), None

    def listdir(self, ref: object) -> Sequence[tuple[str, Node, object]]:
        return ()

    def open_file(self, ref: object) -> BinaryIO:
        return ViewIO.stream(self.data)


class _Engine:
    def __init__(self, handlers: Sequence[Handler], limits: Limits, name: str) -> None:
        self.handlers = [(h, re.compile(b"|".join(h.PATTERNS), re.DOTALL)) for h in handlers]
        patterns = tuple(dict.fromkeys(p for h in handlers for p in h.PATTERNS))
        self._magics = _magic_rules(patterns)
        self._scanner: yara_x.Scanner | None = None  # used by this engine's thread only, as YARA-X requires
        self._patterns = [re.compile(p, re.DOTALL) for p in patterns]
        self._dense = False  # the data is dense with magics' first bytes: searched with re (see _search)
        # a quick first test of a file's head: one expression for every magic at offset 0 (a match
        # at one position, not a search, so one alternation is fast), then the few at other offsets
        at_start = [p for h in handlers if not h.OFFSET for p in h.PATTERNS]
        self.any_magic = re.compile(b"|".join(at_start) if at_start else b"(?!)", re.DOTALL)
        self.offset_handlers = [(h, pattern) for h, pattern in self.handlers if h.OFFSET]
        # the handlers whose patterns may match at a position, by the byte there (in handler order):
        # where a magic was found only those few are asked, not every handler's pattern
        self._by_byte: list[list[tuple[Handler, re.Pattern[bytes]]]] = [[] for _ in range(256)]
        for handler, pattern in self.handlers:
            for byte in _handler_first_bytes(tuple(handler.PATTERNS)):
                self._by_byte[byte].append((handler, pattern))
        self._pool: ThreadPoolExecutor | None = None
        self.budget = Budget(limits)
        self.name = name
        self.found = _Out()  # what the engine finds in the image
        self.out = self.found  # where it goes now: there, or in a chunk's rest's place (see `_finish`)

    def issue(self, chain: str, offset: int | None, message: str) -> None:
        self.out.issues.append(TreeIssue(chain, offset, message))

    def _failed(self, failures: dict[str, int], handler: Handler, chain: str, offset: int, message: str) -> None:
        failures[handler.NAME] = failures.get(handler.NAME, 0) + 1
        self.issue(chain, offset, f"{handler.NAME}: {message}")
        if failures[handler.NAME] == _MAX_FAILURES:
            self.issue(chain, offset, f"{handler.NAME}: {_MAX_FAILURES} failures: not tried again in this container")

    def _identify(
        self,
        data: memoryview,
        at: int,
        chain: str,
        base: int,
        *,
        failures: dict[str, int],
        searches: dict[str, tuple[int, int | None]],
    ) -> tuple[Handler, Chunk] | None:
        if at >= len(data):
            return None
        for handler, pattern in self._by_byte[data[at]]:
            off = at - handler.OFFSET
            if off < 0 or failures.get(handler.NAME, 0) >= _MAX_FAILURES or not pattern.match(data, at):
                continue
            ctx = Context(self.budget, f"{chain}!{handler.NAME}@{base + off:#x}", self._issues(), searches)
            try:
                chunk = handler.identify(data, off, ctx)
            except LimitError:
                raise
            except FormatError as exc:
                self._failed(failures, handler, chain, base + off, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - one bad parser never stops the scan (STYLE.md)
                self._failed(failures, handler, chain, base + off, f"unreadable: {type(exc).__name__}: {exc}")
                continue
            if chunk is None:
                continue
            if chunk.start != off or not off < chunk.end <= len(data):
                self.issue(chain, base + off, f"{handler.NAME}: bad chunk bounds {chunk.start}-{chunk.end}")
                continue
            return handler, chunk
        return None

    def scan(self, data: memoryview, chain: str, depth: int, base: int = 0) -> bool:
        """Unpack every chunk in ``data``; True if one starts at offset 0 (``data`` is a wrapper, not a payload).

        A chunk's filesystem is walked as soon as the chunk is found, and the reader threads start
        on its files' first bytes; the rest of the chunk (its files that are images, its payloads)
        waits until every chunk of ``data`` has been found. So a kernel is decoded in this thread
        while the threads decompress the root filesystem that follows it. What each chunk yields is
        still listed in the order of the chunks (see `_finish`).
        """
        failures: dict[str, int] = {}
        searches: dict[str, tuple[int, int | None]] = {}  # see Context.searches
        later: list[_Later] = []
        try:
            # most data starts with its container (an image, a file found to be one): tried before any
            # search, which then starts after it (in a squashfs image, nothing is left to search)
            pos = 0
            found = None
            if self.any_magic.match(data) is not None:
                self.budget.check_time()
                found = self._identify(data, 0, chain, base, failures=failures, searches=searches)
                pos = self._unpack(found, chain, base, depth, later) if found is not None else 1
            starts_at_zero = found is not None
            # the data is searched one window at a time, from where the last chunk ended: a 30 MB squashfs
            # found at the start of a window is not read through for magics, it is skipped
            window = pos
            while window < len(data):
                self.budget.check_time()
                hits, end = self._search(data, window)
                for at in hits:
                    if at < pos:  # inside a chunk already unpacked, or tried
                        continue
                    self.budget.check_time()
                    found = self._identify(data, at, chain, base, failures=failures, searches=searches)
                    if found is None or found[1].start < pos:  # nothing, or a chunk starting inside the previous one
                        pos = at + 1
                        continue
                    starts_at_zero |= found[1].start == 0  # a chunk found by a magic after its start (tar's)
                    pos = self._unpack(found, chain, base, depth, later)
                window = max(end, pos)
        except BaseException:
            self._finish(later, stopped=True)  # a limit was reached: what was found is kept
            raise
        self._finish(later)
        return starts_at_zero

    def _finish(self, later: list[_Later], *, stopped: bool = False) -> None:
        """Do, in order, the rest of each chunk of one data (``stopped``: a limit was reached, keep it as is).

        What a chunk's rest finds goes to the place kept for it after its walk (`_Later.out`), so the
        image's issues, filesystems and payloads come in the order of its chunks. Once a limit stops
        one rest, the payloads of the chunks after it are kept undecoded (shown as data), like those of
        the chunks before it was reached.
        """
        try:
            for part in later:
                if stopped:
                    self._keep(part)
                    continue
                outer = self.out
                try:
                    part.begun = True
                    self.out = part.out
                    self._rest(part)
                finally:
                    self.out = outer
                    part.cancel()
        except BaseException:
            for part in later:  # wherever the limit struck, even before the first rest began
                if not part.begun:
                    self._keep(part)
            raise

    @staticmethod
    def _keep(part: _Later) -> None:
        """A chunk's payloads, undecoded: what is left of a chunk whose rest a limit stopped."""
        part.begun = True
        part.cancel()
        for blob in part.chunk.blobs:
            part.out.blobs.append((f"{part.chain}!{blob.name}" if blob.name else part.chain, blob.data))

    def _issues(self) -> list[TreeIssue]:
        """The list a handler adds its issues to (it holds places for later finds too, which handlers never see)."""
        return cast(list[TreeIssue], self.out.issues)

    def _search(self, data: memoryview, start: int) -> tuple[list[int], int]:
        """Where a magic matches in ``start`` .. ``start + _WINDOW``, in order; and where that window ends.

        YARA-X checks the whole pattern wherever a magic's literal part occurs, each check costing
        microseconds: data dense with them (``hsqs`` over and over, as a hostile image may be) takes
        it 0.6 s a MiB, where Python's re, one pattern at a time, takes a tenth of that. A window that
        slow (in this thread's CPU time: waiting for a core does not count) puts the engine on re for
        the rest of its data.
        """
        end = min(len(data), start + _WINDOW)
        stop = min(len(data), end + _LONGEST_MAGIC)
        if self._dense:
            hits: set[int] = set()
            for pattern in self._patterns:
                pos = start
                while (m := pattern.search(data, pos, stop)) is not None and m.start() < end:
                    hits.add(m.start())
                    pos = m.start() + 1
            return sorted(hits), end
        if self._scanner is None:
            self._scanner = yara_x.Scanner(self._magics)
            # a window has fewer starting offsets than this: no match is ever left out
            self._scanner.max_matches_per_pattern(_WINDOW + _LONGEST_MAGIC)
        began = time.thread_time()
        # YARA-X takes bytes: one window's copy (64 KiB, microseconds)
        found = self._scanner.scan(bytes(data[start:stop]))
        self._dense = time.thread_time() - began > _DENSE_SECONDS
        offsets = {m.offset for rule in found.matching_rules for p in rule.patterns for m in p.matches}
        return sorted(start + h for h in offsets if start + h < end), end

    def _unpack(self, found: tuple[Handler, Chunk], chain: str, base: int, depth: int, later: list[_Later]) -> int:
        """Walk an identified chunk, its rest added to ``later``; where it ends."""
        handler, chunk = found
        cchain = f"{chain}!{chunk.label or handler.NAME}@{base + chunk.start:#x}"
        nodes: list[tuple[str, Node, object]] = []
        heads = None
        if chunk.filesystem is not None:
            heads = _Heads(self._readers(), chunk.filesystem)
            self._walk(chunk.filesystem, cchain, nodes, heads)
            self.out.mounts.append(_Mount(cchain, chunk.filesystem, handler.FILESYSTEM, nodes))
        later.append(_Later(chunk, cchain, depth, nodes, heads, self.out.reserve()))
        return chunk.end

    def _walk(self, fs: Filesystem, chain: str, nodes: list[tuple[str, Node, object]], heads: _Heads) -> None:
        """Every entry of ``fs`` into ``nodes``; the first bytes of files that may be images are read meanwhile."""
        try:
            for path, node, ref in fs.walk(Context(self.budget, chain, self._issues())):
                nodes.append((path, node, ref))
                if _sniffed(path, node):
                    heads.add(ref)
        except LimitError:
            heads.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - keep what was walked before the parser failed
            self.issue(chain, None, f"walk stopped: {type(exc).__name__}: {exc}")
        heads.flush()

    def _rest(self, part: _Later) -> None:
        """What `_unpack` left of a chunk: its filesystem's files that are images, then its payloads."""
        chunk, chain, depth = part.chunk, part.chain, part.depth
        if chunk.filesystem is not None and part.heads is not None:
            self._nested_files(chunk.filesystem, part.nodes, chain, depth, part.heads)
        for blob in chunk.blobs:
            bchain = f"{chain}!{blob.name}" if blob.name else chain
            if depth + 1 > self.budget.limits.max_depth:
                self.issue(bchain, None, f"nesting depth limit of {self.budget.limits.max_depth} reached: not unpacked")
                self.out.blobs.append((bchain, blob.data))
                continue
            if not self.scan(blob.data, bchain, depth + 1, blob.offset):
                self.out.blobs.append((bchain, blob.data))

    def _nested_files(
        self, fs: Filesystem, nodes: list[tuple[str, Node, object]], chain: str, depth: int, heads: _Heads
    ) -> None:
        """Unpack the files of a filesystem that are images or archives themselves.

        A file is unpacked when its name says it is one (``rootfs.sqfs``, ``initramfs.cpio.gz``), when
        a handler's magic matches at its start whatever its name (a squashfs kept as ``data.dat``), or
        when it looks like a firmware blob (under a firmware folder, or large and of no known type): then
        it is searched at every offset. Only the first `_HEAD` bytes of other files are read (``heads``,
        read during the walk): programs and text are never read to their end here. What is found
        only by content is kept when a filesystem or archive is inside; a mere compressed stream (the
        gzip'd documentation of a Debian root filesystem) is not added to the tree.
        """
        files = [(p, n, r) for p, n, r in nodes if n.type is EntryType.FILE and n.size >= _MIN_NESTED]
        read = iter(heads)
        try:
            for path, node, ref in files:
                by_name = not _sniffed(path, node)  # large enough, so named as an image
                if not by_name:
                    head = next(read)
                    self.budget.check_time()
                    if not self._sniff(path, node, head):
                        continue
                fchain = f"{chain}!{path}"
                if depth + 1 > self.budget.limits.max_depth:
                    limit = self.budget.limits.max_depth
                    self.issue(fchain, None, f"nesting depth limit of {limit} reached: not unpacked")
                    continue
                try:
                    self.budget.charge(node.size)
                    with fs.open_file(ref) as fh:
                        data = fh.read()
                except LimitError:
                    raise
                except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, the walk goes on
                    self.issue(fchain, None, f"unreadable: {type(exc).__name__}: {exc}")
                    continue
                mounts, blobs = len(self.out.mounts), len(self.out.blobs)
                self.scan(memoryview(data), fchain, depth + 1)
                if not by_name and not _Out.any_mount(self.out.mounts[mounts:]):
                    del self.out.blobs[blobs:]
        finally:
            heads.cancel()

    def _readers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(_READ_THREADS, os.cpu_count() or 1))
        return self._pool

    def close(self) -> None:
        """Stop the reader threads; heads not read yet are not read."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _has_magic(self, head: bytes) -> bool:
        """Whether any handler's pattern matches ``head`` where that handler's magic sits."""
        return self.any_magic.match(head) is not None or any(p.match(head, h.OFFSET) for h, p in self.offset_handlers)

    def _sniff(self, path: str, node: Node, head: bytes | Exception) -> bool:
        """Whether a file not named as an image is one, from its first bytes (see `_nested_files`)."""
        if isinstance(head, LimitError):
            raise head
        if isinstance(head, Exception):
            return False  # a file that cannot be read is reported by whoever reads it whole
        if self._has_magic(head):
            matched = [handler for handler, pattern in self.handlers if pattern.match(head, handler.OFFSET)]
            for handler in matched:
                inner = handler.peek(head, _HEAD)
                # a container, or a compressed stream of one (not a gzip'd changelog)
                if inner is None or self._has_magic(inner):
                    return True
            if matched:
                return False
        if head.startswith(_KNOWN_TYPES) or b"\0" not in head:
            return False  # a program, a picture ... or text (no NUL in its first block)
        return node.size >= _CARVE_SIZE or path.startswith(_FIRMWARE_DIRS)


@functools.cache  # every image's engine asks for the same patterns
def _magic_rules(patterns: tuple[bytes, ...]) -> yara_x.Rules:
    """One YARA-X rule whose strings are the handlers' magics, as regular expressions.

    YARA-X finds all of them in one pass over the data (Aho-Corasick on their literal parts), where
    Python's re needs a pass per pattern: over a 6 MB kernel, 0.02 s instead of 0.17 s for 33 magics.
    The handlers' patterns use only what both dialects read alike (bytes, ``.``, classes, ``{n}``,
    groups, alternatives); a test checks that both find the same offsets.
    """
    strings = "\n".join(f"    $m{i} = /{_yara_regex(p)}/s" for i, p in enumerate(patterns))
    compiler = yara_x.Compiler()
    compiler.add_source(f"rule magic {{\n  strings:\n{strings}\n  condition:\n    any of them\n}}\n")
    if compiler.warnings():  # a slow or odd pattern: fail at the first image, never search less
        raise ValueError(f"magic patterns: {compiler.warnings()}")
    return compiler.build()


_RE: Any = re  # its parser and constants (re._parser, re._constants) have no type stubs


def _first_bytes(patterns: Sequence[bytes]) -> set[int]:
    """Every byte a match of any of ``patterns`` may start with (all 256 where that is not plain).

    Read from the parsed expressions (``re``'s own parser): literals, classes, groups, alternatives and
    repeats; anything else, or a pattern that may match nothing, counts as any byte.
    """
    out: set[int] = set()
    for pattern in patterns:
        try:
            parsed = _RE._parser.parse(pattern, re.DOTALL)
            # an inline (?i) leaves the literals as written: any byte
            first, nullable = (None, True) if parsed.state.flags & re.IGNORECASE else _first_of_sequence(list(parsed))
        except Exception:  # noqa: BLE001 - a construct not read here: any byte, never one missed
            first, nullable = None, True
        if first is None or nullable:
            return set(range(256))
        out |= first
    return out


@functools.cache  # every image's engine asks for the same handlers' (parsing them all takes 5 ms)
def _handler_first_bytes(patterns: tuple[bytes, ...]) -> frozenset[int]:
    return frozenset(_first_bytes(patterns))


_ANY_BYTE = None  # what `_first_of` gives for "any byte": the caller widens to all 256


def _first_of_sequence(items: list[tuple[Any, Any]]) -> tuple[set[int] | None, bool]:
    """(first bytes, may match nothing) of a sequence of parsed items."""
    out: set[int] = set()
    for op, av in items:
        first, nullable = _first_of(op, av)
        if first is None:
            return _ANY_BYTE, False
        out |= first
        if not nullable:
            return out, False
    return out, True


def _first_of(op: Any, av: Any) -> tuple[set[int] | None, bool]:
    c = _RE._constants
    if op is c.LITERAL:
        return {av}, False
    if op is c.NOT_LITERAL:
        return set(range(256)) - {av}, False
    if op is c.IN:
        chosen: set[int] = set()
        negate = False
        for kind, value in av:
            if kind is c.LITERAL:
                chosen.add(value)
            elif kind is c.RANGE:
                chosen.update(range(value[0], value[1] + 1))
            elif kind is c.NEGATE:
                negate = True
            else:
                return _ANY_BYTE, False
        return (set(range(256)) - chosen if negate else chosen), False
    if op is c.SUBPATTERN:
        _group, add_flags, _del_flags, sub = av
        if add_flags & re.IGNORECASE:
            return _ANY_BYTE, False
        return _first_of_sequence(list(sub))
    if op is c.BRANCH:
        union: set[int] = set()
        nullable = False
        for alternative in av[1]:
            first, empty = _first_of_sequence(list(alternative))
            if first is None:
                return _ANY_BYTE, False
            union |= first
            nullable |= empty
        return union, nullable
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
        low, _high, sub = av
        first, empty = _first_of_sequence(list(sub))
        return first, low == 0 or empty
    return _ANY_BYTE, False


def _yara_regex(pattern: bytes) -> str:
    """A Python ``re`` byte pattern written for YARA-X: bytes outside printable ASCII as ``\\xHH``, ``/`` escaped.

    Anchors and escapes of raw bytes, which the two dialects read differently, are refused.
    """
    if re.search(rb"\$|(?<!\[)\^|\\[^\x21-\x7e]", pattern):  # a class may start with ^
        raise ValueError(f"magic pattern {pattern!r}: no anchors, and no backslash before a raw byte")
    out = []
    for byte in pattern:
        char = chr(byte)
        if char == "/":
            out.append("\\/")
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def _sniffed(path: str, node: Node) -> bool:
    """Whether a file is told an image or not by its first bytes (`_Engine._nested_files`): one large
    enough to be one and not named as one. `_Engine._walk` reads those bytes ahead (`_Heads`) for
    exactly these files, in the walk's order, so both ask this."""
    return (
        node.type is EntryType.FILE
        and node.size >= _MIN_NESTED
        and _NESTED_NAME.search(posixpath.basename(path)) is None
    )


def _read_heads(fs: Filesystem, refs: list[object]) -> list[bytes | Exception]:
    heads: list[bytes | Exception] = []
    for ref in refs:
        try:
            with fs.open_file(ref) as fh:
                heads.append(fh.read(_HEAD))
        except Exception as exc:  # noqa: BLE001 - handed to the engine's thread, which decides
            heads.append(exc)
            if isinstance(exc, LimitError):
                break
    return heads


def _chain_path(chain: str) -> str:
    """``img!uimage@0x0!lzma@0x40`` -> ``/@image/uimage@0x0/lzma@0x40``; a file's path keeps its folders."""
    parts = [p.strip("/") if p.startswith("/") else p.replace("/", "_") for p in chain.split("!")[1:]]
    return posixpath.join(PREFIX, *parts)


def _score(mount: _Mount) -> int:
    paths = {p for p, _, _ in mount.nodes}
    return sum(marker in paths for marker in _ROOT_MARKERS)


class ImageTree(FileTree):
    """The unpacked image: device paths of its root filesystem, and everything else under `PREFIX`."""

    def __init__(self, name: str, limits: Limits) -> None:
        super().__init__(name)
        self.limits = limits
        self._entries: dict[str, Entry] = {}
        self._files: dict[str, tuple[Filesystem, object]] = {}
        self._order: list[str] | None = None
        self._real_dirs: set[str] | None = None
        self.root_chain: str | None = None

    def _add(self, path: str, entry: Entry, fs: Filesystem | None, ref: object) -> None:
        parent = posixpath.dirname(path)
        if path != "/" and parent not in self._entries:
            self._add(parent, Entry(parent, EntryType.DIR, 0o755, 0, 0, 0, self.name), None, None)
        old = self._entries.get(path)
        if old is not None:
            if old.type is EntryType.DIR and entry.type is EntryType.DIR:
                if old.chain == self.name:  # a synthetic directory takes the real one's metadata
                    self._entries[path] = entry
                return
            self.issues.append(TreeIssue(entry.chain, None, f"{path}: a second entry with this path: not shown"))
            return
        self._entries[path] = entry
        if fs is not None and entry.type is EntryType.FILE:
            self._files[path] = (fs, ref)
        self._order = None
        self._real_dirs = None

    def _mount(self, at: str, chain: str, fs: Filesystem, nodes: list[tuple[str, Node, object]]) -> None:
        for path, node, ref in nodes:
            full = normalise(posixpath.join(at, path.lstrip("/"))) if at != "/" else normalise(path)
            size = node.size if node.type is EntryType.FILE else 0  # as DirectoryTree: only files have a size
            entry = Entry(full, node.type, node.mode & 0o7777, node.uid, node.gid, size, chain, node.link)
            self._add(full, entry, fs, ref)

    def _sorted(self) -> list[str]:
        if self._order is None:
            self._order = sorted(self._entries, key=lambda p: p.split("/"))
        return self._order

    def entries(self) -> Iterator[Entry]:
        return (self._entries[p] for p in self._sorted())

    def get(self, path: str) -> Entry | None:
        return self._entries.get(normalise(path))

    def resolve(self, path: str) -> str | None:
        # A stored path that is no symlink and lies under no symlinked folder resolves to itself. The
        # listing and the detectors resolve every file; the general walk costs a join per path part.
        entry = self._entries.get(path)
        if entry is not None and entry.type is not EntryType.SYMLINK:
            if self._real_dirs is None:
                real = set()
                for p in self._sorted():
                    e = self._entries[p]
                    if e.type is EntryType.DIR and (p == "/" or posixpath.dirname(p) in real):
                        real.add(p)
                self._real_dirs = real
            if path == "/" or posixpath.dirname(path) in self._real_dirs:
                return path
        return super().resolve(path)

    def _file(self, path: str) -> tuple[Entry, Filesystem, object]:
        real = self.resolve(path)
        entry = self._entries.get(real) if real else None
        if entry is None or entry.type is not EntryType.FILE or real not in self._files:
            raise InputError(f"{self.name}!{normalise(path)}: not a regular file in the tree")
        fs, ref = self._files[real]
        return entry, fs, ref

    def storage_key(self, path: str) -> str | None:
        try:
            _, fs, ref = self._file(path)
            return fs.storage_key(ref)
        except LimitError:
            raise
        except Exception:  # noqa: BLE001 - no key: the file is read, and whatever is wrong is reported then
            return None

    def open(self, path: str) -> BinaryIO:
        entry, fs, ref = self._file(path)
        if entry.size > self.limits.max_bytes:
            raise LimitError(f"{entry.location}: {entry.size} bytes is above the unpacked-bytes limit")
        try:
            return fs.open_file(ref)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{entry.location}: unreadable: {type(exc).__name__}: {exc}") from exc

    def read(self, path: str, limit: int | None = None) -> bytes:
        entry, _, _ = self._file(path)
        with watchdog(self.limits.timeout), self.open(path) as fh:
            try:
                return fh.read(-1 if limit is None else limit)
            except InputError:
                raise
            except Exception as exc:
                raise InputError(f"{entry.location}: unreadable: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Interrupt a parser stuck in a loop on hostile input once ``seconds`` have passed.

    The budget's own time checks cover nospy's loops; a library looping inside itself is only stopped
    by a signal. Signals reach the main thread only, so elsewhere the budget checks are all there is.
    The alarm repeats: a library that swallows the first exception (``except Exception``) gets
    another until control is back here. An alarm that lands in this function's own set-up or
    clean-up (or in contextlib's code around it) is ignored, so the timer is always disarmed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        if frame is not None and (frame.f_code is _WATCHDOG_CODE or frame.f_code.co_filename == contextlib.__file__):
            return  # the repeat comes back once the guarded code runs again
        raise LimitError(f"time limit of {seconds:g} s reached")

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds, _ALARM_REPEAT)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_WATCHDOG_CODE = inspect.unwrap(watchdog).__code__


def open_image(path: Path, limits: Limits | None = None, handlers: Sequence[Handler] | None = None) -> ImageTree:
    """Unpack the image at ``path`` (read-only, memory-mapped) into one tree.

    Raises `InputError` only if the file itself cannot be opened; everything the unpacker cannot read
    inside it becomes a `TreeIssue` in ``tree.issues``.
    """
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, io.SEEK_END)
            mapped: mmap.mmap | bytes = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    return open_data(memoryview(mapped), path.name, limits, handlers)


def open_data(
    data: bytes | memoryview, name: str, limits: Limits | None = None, handlers: Sequence[Handler] | None = None
) -> ImageTree:
    """Unpack an image already in memory; ``name`` starts every container chain."""
    from nospy.firmware.unpack.handlers import HANDLERS  # noqa: PLC0415 - the handlers import this module's types

    limits = limits or Limits()
    view = memoryview(data)
    engine = _Engine(HANDLERS if handlers is None else handlers, limits, name)
    tree = ImageTree(name, limits)
    tree._add("/", Entry("/", EntryType.DIR, 0o755, 0, 0, 0, name), None, None)
    stopped = False
    try:
        with watchdog(limits.timeout):
            engine.scan(view, name, 1)
    except LimitError as exc:
        stopped = True
        engine.out = engine.found  # the alarm may strike anywhere, even as the engine changes places
        engine.issue(name, None, f"{exc}: the rest of the image was not unpacked")
    finally:
        engine.close()
    issues, mounts, blobs = engine.found.flat()
    if not mounts and not blobs:
        found = "nothing unpacked within the limits" if stopped else "no known container or filesystem found"
        issues.append(TreeIssue(name, None, f"{found}: the image is shown as one file"))
        blobs.append((f"{name}!raw@0x0", view))

    rootable = [m for m in mounts if m.rootable]
    scored = sorted(rootable, key=lambda m: (_score(m), len(m.nodes)), reverse=True)
    root: _Mount | None = None
    if scored and _score(scored[0]) >= _MIN_ROOT_SCORE:
        root = scored[0]
    elif len(mounts) == 1 and not blobs and mounts[0].rootable:
        root = mounts[0]  # a lone filesystem or archive is its own root
    # the unpacker's own entries first: a root filesystem that names a path under /@image itself
    # (to pass its file off as the kernel, say) gets an issue, not the place
    for mount in mounts:
        if mount is not root:
            tree._mount(_chain_path(mount.chain), mount.chain, mount.fs, mount.nodes)
    for chain, blob in blobs:
        fs = _DataFile(blob)
        tree._mount(posixpath.join(_chain_path(chain), "data"), chain, fs, [("/", fs.root()[0], None)])
    if root is not None:
        tree._mount("/", root.chain, root.fs, root.nodes)
        tree.root_chain = root.chain
    tree.issues.extend(issues)
    return tree
