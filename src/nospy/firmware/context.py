"""What every firmware detector is handed: the tree, the agreement, the facts found so far.

A detector is declared data (`Detector`: name, the rules it may emit, why, references) plus one
function. Detectors run in the order of `nospy.firmware.scan.DETECTORS`; a later one reads the facts
of an earlier one from the context (the listener check reads the services found at boot) instead of
re-computing them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from nospy.agreement.schema import Agreement
from nospy.errors import InputError
from nospy.findings import ErrorEntry, Finding
from nospy.firmware.cache import FileMemo
from nospy.firmware.geo import CountryLookup
from nospy.firmware.tree import Entry, EntryType, FileTree

__all__ = ["MAX_READ", "Context", "Detector", "Evidence", "is_doc", "text_lines"]

# Larger files are read only up to this many bytes: firmware parts worth reading (scripts, configs,
# daemons, libraries) are far smaller, and a multi-gigabyte blob must not exhaust memory.
MAX_READ = 32 * 1024 * 1024

# Folders and names that hold documentation: passwords and hosts mentioned there are prose.
_DOC_DIRS = (
    "/usr/share/doc/",
    "/usr/share/man/",
    "/usr/share/info/",
    "/usr/share/common-licenses/",
    "/usr/share/licenses/",
)
_DOC_NAMES = ("readme", "license", "licence", "copying", "changelog", "changes", "news", "authors", "notice")
_DOC_EXTS = (".md", ".txt", ".rst", ".html", ".htm", ".pdf", ".1", ".5", ".8", ".gz", ".info")


_STRINGS = re.compile(rb"[\x20-\x7e]{6,}")
# Threads reading files ahead of the detectors: decompression (zlib, lzma, zstd) releases the GIL.
_READ_THREADS = 2


def is_doc(path: str) -> bool:
    """True for documentation files: their words describe things, they do not configure them."""
    if path.startswith(_DOC_DIRS):
        return True
    base = posixpath.basename(path).lower()
    return base.startswith(_DOC_NAMES) or base.endswith(_DOC_EXTS)


def text_lines(data: bytes) -> list[str]:
    """Lines of a text file, decoded without failing (firmware configs are rarely clean UTF-8)."""
    return data.decode("latin-1").splitlines()


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a fact was seen: device path, container location, line (1-based) or byte offset."""

    path: str
    location: str
    line: int | None = None
    offset: int | None = None

    def fields(self) -> dict[str, Any]:
        return {"path": self.path, "location": self.location, "line": self.line, "offset": self.offset}


@dataclass
class Context:
    tree: FileTree
    agreement: Agreement | None
    geo: CountryLookup | None = None
    rules_dirs: list[Path] = field(default_factory=list)
    errors: list[ErrorEntry] = field(default_factory=list)
    facts: dict[str, list[Any]] = field(default_factory=dict)
    _cache: dict[str, bytes | None] = field(default_factory=dict)
    _strings: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    _files: list[Entry] | None = None
    _ahead: dict[str, Future[bytes]] = field(default_factory=dict)
    _pool: ThreadPoolExecutor | None = None

    def read_ahead(self) -> None:
        """Start reading every regular file in background threads, in the order of `files`.

        The detectors walk the files in that order, so the reading (decompression, mostly) runs on
        other cores while they parse; `read` then takes the finished content. Errors stay where they
        were: a file that failed is reported when (and if) a detector reads it. Stop with `close`.
        """
        if self._pool is not None:
            return
        self._pool = ThreadPoolExecutor(max_workers=min(_READ_THREADS, os.cpu_count() or 1))
        for entry in self.files():
            if entry.path not in self._cache and entry.path not in self._known:
                self._ahead[entry.path] = self._pool.submit(self.tree.read, entry.path, MAX_READ)

    def close(self) -> None:
        """Stop reading ahead (files not read yet are read on demand again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._ahead.clear()

    def _read_ahead(self, path: str) -> bytes:
        ahead = self._ahead.pop(path, None)
        if ahead is not None and not ahead.cancel():
            # a reader thread has it: wait, but no longer than the tree's own time limit; a parser stuck
            # on hostile bytes is then read again here, where the tree's watchdog can stop it
            limits = getattr(self.tree, "limits", None)
            try:
                return ahead.result(timeout=getattr(limits, "timeout", None))
            except TimeoutError:
                pass
        return self.tree.read(path, MAX_READ)

    memo: FileMemo = field(default_factory=lambda: FileMemo(None))
    _digests: dict[str, str] = field(default_factory=dict)
    _known: dict[str, str] = field(default_factory=dict)  # path -> SHA-256 known from its storage key, not read

    def digest_files(self) -> list[str]:
        """The SHA-256 of every readable regular file, in the order of `files` (unreadable ones reported).

        With a content cache, a file whose stored form (`FileTree.storage_key`) the cache has seen
        unpack before is not read: its content's digest is the one stored then, and `analyse` reads
        it only if an analyser's result for that content is missing. The others are read in order,
        so read errors come in the same order with or without a cache.
        """
        keys: dict[str, str] = {}
        if self.memo.store is not None:
            for entry in self.files():
                key = self.tree.storage_key(entry.path) if entry.size <= MAX_READ else None
                if key is not None:
                    keys[entry.path] = key
        stored = self.memo.stored(keys.values())
        out = []
        for entry in self.files():
            key = keys.get(entry.path)
            sha, size = stored.get(key, ("", -1)) if key is not None else ("", -1)
            if size == entry.size:
                self._known[entry.path] = sha
                out.append(sha)
                continue
            data = self.read(entry.path)
            if data is None:
                continue
            out.append(self.digest(entry.path, data))
            if key is not None and len(data) == entry.size:
                self.memo.remember_stored(key, out[-1], entry.size)
        return out

    def analyse(self, analyser: str, entry: Entry, compute: Callable[[bytes], Any]) -> Any:
        """``compute(content)`` of a regular file (JSON types; ``None`` when it is unreadable), cached by content.

        ``compute`` must depend on the content alone (never on the path): its result is reused for the
        same bytes anywhere in any image. The file is read only when the result is not in the cache.
        Without a cache the result goes through the same JSON round trip, so a scan's report is the
        same with or without one.
        """
        sha = self._known.get(entry.path)
        if sha is not None:
            return self.memo.get(sha, analyser, lambda: compute(self._content(entry.path)))
        data = self.read(entry.path)
        if data is None:
            return None
        return self.memo.get(self.digest(entry.path, data), analyser, partial(compute, data))

    def _content(self, path: str) -> bytes:
        data = self.read(path)
        if data is None:  # it unpacked before, from the same stored bytes
            raise InputError(f"{path}: unreadable now, though its stored form was read before")
        return data

    def files(self) -> list[Entry]:
        """Every regular file of the tree, once."""
        if self._files is None:
            self._files = [e for e in self.tree.entries() if e.type is EntryType.FILE]
        return self._files

    def entry(self, path: str) -> Entry | None:
        real = self.tree.resolve(path)
        return self.tree.get(real) if real else None

    def read(self, path: str) -> bytes | None:
        """The content of the file at ``path`` (symlinks followed), or ``None`` with an error entry."""
        if path in self._cache:
            return self._cache[path]
        data: bytes | None
        try:
            data = self._read_ahead(path)
        except InputError as exc:
            entry = self.tree.get(path)
            if entry is not None and entry.type is EntryType.FILE:  # missing files are simply absent
                self.error(path, str(exc))
            data = None
        except OSError as exc:
            self.error(path, exc.strerror or str(exc))
            data = None
        self._cache[path] = data
        return data

    def head(self, path: str, size: int) -> bytes | None:
        """The first ``size`` bytes of the file at ``path``, or ``None`` when `read` gives ``None``.

        Only the head is read (a large program is not decompressed whole to see that it is not a
        script), unless the file was read before or is being read ahead.
        """
        if path not in self._cache and path not in self._ahead:
            with contextlib.suppress(InputError, OSError):
                return self.tree.read(path, size)
        data = self.read(path)  # whole, or unreadable: `read` reports why
        return None if data is None else data[:size]

    def digest(self, path: str, data: bytes) -> str:
        """SHA-256 of ``data``, the content read at ``path`` (computed once per path)."""
        if self._cache.get(path) is not data:
            return hashlib.sha256(data).hexdigest()
        if path not in self._digests:
            self._digests[path] = hashlib.sha256(data).hexdigest()
        return self._digests[path]

    def cached(self, analyser: str, path: str, data: bytes, compute: Callable[[], Any]) -> Any:
        """``compute()``'s result on this content (JSON types), from the content cache when it has it.

        ``compute`` must depend on ``data`` alone (never on the path): its result is reused for the
        same bytes anywhere in any image. Without a cache the result goes through the same JSON
        round trip, so a scan's report is the same with or without one.
        """
        return self.memo.get(self.digest(path, data), analyser, compute)

    def strings(self, path: str, data: bytes) -> list[tuple[int, str]]:
        """(offset, text) of the printable ASCII runs of a binary file, as strings(1) -n 6; computed once."""
        if path not in self._strings:
            self._strings[path] = [(m.start(), m.group().decode("ascii")) for m in _STRINGS.finditer(data)]
        return self._strings[path]

    def exists(self, path: str) -> bool:
        entry = self.entry(path)
        return entry is not None and entry.type is EntryType.FILE

    def evidence(self, path: str, line: int | None = None, offset: int | None = None) -> Evidence:
        entry = self.tree.get(path)
        location = entry.location if entry is not None else f"{self.tree.name}!{path}"
        return Evidence(path, location, line, offset)

    def error(self, path: str | None, message: str) -> None:
        self.errors.append(ErrorEntry(source=f"firmware:{self.tree.name}", location=path, message=message))

    def texts(self, predicate: Callable[[Entry], bool]) -> Iterator[tuple[Entry, bytes]]:
        """Files chosen by ``predicate`` with their content, unreadable ones skipped (error entries)."""
        for entry in self.files():
            if predicate(entry):
                data = self.read(entry.path)
                if data is not None:
                    yield entry, data


@dataclass(frozen=True)
class Detector:
    """A declared detector: what it looks for, which rules it may emit, and the sources it rests on."""

    name: str
    rules: tuple[str, ...]
    rationale: str
    references: tuple[str, ...]
    run: Callable[[Context], list[Finding]]


def finding(rule_id: str, message: str, ev: Evidence, **evidence: Any) -> Finding:
    """A finding located by ``ev``, with ``evidence`` as its evidence object."""
    return Finding.of(
        rule_id,
        message,
        path=ev.path,
        location=ev.location,
        line=ev.line,
        offset=ev.offset,
        evidence={k: v for k, v in evidence.items() if v is not None},
    )
