"""Content cache of firmware analysis results, in the service's database (`nospy.server.db.Analysis`).

What is cached is what depends on bytes alone: one analyser's result on one file's content (YARA
matches, endpoints, credentials, keys, ELF imports, component banners), one password hash's cracking,
a whole image's report, and the content (SHA-256, size) that a file's stored form unpacks to, so a
file that a new release stores as the release before did is known without decompressing it.
Results never hold where the content was found: each scan binds them again to the path and container
chain of the file in the image it reads, so an unchanged file costs a hash and a dictionary look-up
(or, in squashfs, a hash of its stored bytes). Whole-tree reasoning (accounts, boot services, consoles) is recomputed:
it reads a few small files.

The analysis version of an analyser is a digest of nospy's version, the source of the modules the
analyser runs and its data files (YARA rules, the default-credential list); a changed rule or
detector misses the cache instead of serving stale results.

One scan reads the results of all its files in a few batched queries and writes its new results in
one transaction at the end, so many processes (Ray workers) share one SQLite file (WAL, busy
timeout, retries on a locked database) or one PostgreSQL database. The database modules are imported
when a cache is opened: a scan without one does not load the web service's stack.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nospy import __version__
from nospy.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["ANALYSERS", "ContentCache", "FileMemo", "analysis_version", "digest"]

T = TypeVar("T")

# Analyser -> (modules of nospy.firmware whose code makes its result, data files or folders it reads).
# context.py is in every entry: it decides what a detector is handed (read limits, strings).
ANALYSERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "backdoors": (("backdoors.py", "context.py"), ("backdoors",)),
    "endpoints": (("endpoints.py", "context.py"), ()),
    "credentials": (("credentials.py", "context.py"), ()),
    "keys": (("keys.py", "context.py"), ()),
    "listeners": (("listeners.py", "context.py"), ()),
    "components": (("components.py", "context.py"), ()),
    "crack": (("crack.py", "accounts.py"), ("data/default_credentials.json",)),
    "scripts": (("accounts.py", "context.py"), ()),  # passwd lines that boot scripts write
    # a whole image's report: every module of the firmware stage and the report model
    "report": (("*",), ("backdoors", "data/default_credentials.json")),
}

_CHUNK = 400  # keys per IN (...) query: under SQLite's bound-parameter limit with three columns each
_RETRIES = 5


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


def _package_bytes(name: str) -> list[bytes]:
    root = resources.files("nospy.firmware")
    item = root.joinpath(name)
    if name == "*":
        firmware = sorted(
            (f for f in root.iterdir() if f.name.endswith(".py")),
            key=lambda f: f.name,
        )
        others = [resources.files("nospy").joinpath(n) for n in ("findings.py", "verify.py", "evidence.py")]
        return [p for f in (*firmware, *others) for p in (f.name.encode(), f.read_bytes())]
    if item.is_dir():
        files = sorted((f for f in item.iterdir() if f.is_file()), key=lambda f: f.name)
        return [p for f in files for p in (f.name.encode(), f.read_bytes())]
    return [item.read_bytes()]


@cache
def analysis_version(analyser: str) -> str:
    """The version of ``analyser``'s results: nospy's version, its code and its data, digested."""
    modules, data = ANALYSERS[re.split(r"[.+]", analyser, maxsplit=1)[0]]  # keys.p12 is a variant of keys
    parts: list[bytes | str] = [__version__, analyser]
    for name in (*modules, *data):
        parts.extend(_package_bytes(name))
    return digest(*parts)


def rules_digest(dirs: Sequence[Path]) -> str:
    """A digest of users' YARA rule files (``--rules``): their results depend on them too."""
    parts: list[bytes | str] = []
    for d in dirs:
        for f in sorted([*d.glob("*.yar"), *d.glob("*.yara")]):
            parts.extend([f.name, f.read_bytes()])
    return digest(*parts)


class ContentCache:
    """The analysis results stored in one database; safe to share between processes."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.hits = 0  # per-file results found
        self.misses = 0  # per-file results computed
        self.reports_served = 0  # whole reports found

    @staticmethod
    def default_url() -> str:
        """The web service's database (`nospy.server.settings.Settings`); for SQLite, its folder is made."""
        from nospy.server.settings import Settings  # noqa: PLC0415 - see the module docstring

        settings = Settings.from_env()
        if settings.url.startswith("sqlite"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        return settings.url

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> ContentCache:
        """The cache in ``url``, or in the web service's database (`default_url`)."""
        from sqlalchemy import inspect  # noqa: PLC0415 - see the module docstring
        from sqlalchemy.exc import OperationalError  # noqa: PLC0415

        from nospy.server import db  # noqa: PLC0415

        url = url or cls.default_url()
        try:
            engine, _ = db.connect(url)
            # Alembic only when the cache's newest table is missing: loading it costs more than a cached scan
            if migrate and not _retry(lambda: inspect(engine).has_table(db.StoredContent.__tablename__)):
                _retry(lambda: db.migrate(engine))
        except OperationalError as exc:
            raise InputError(f"content cache: cannot open the database: {exc.orig}") from None
        return cls(engine, url)

    def close(self) -> None:
        self.engine.dispose()

    def _select_in(self, wanted: Iterable[Any], query: Callable[[list[Any]], Any]) -> Iterator[Any]:
        """The rows of ``query(chunk)`` over the distinct ``wanted`` values, a chunk of `_CHUNK` at a time
        (under SQLite's bound-parameter limit), each query retried on a locked database."""
        items = sorted(set(wanted))
        for i in range(0, len(items), _CHUNK):
            statement = query(items[i : i + _CHUNK])

            def run(q: Any = statement) -> list[Any]:
                with self.engine.connect() as conn:
                    return list(conn.execute(q))

            yield from _retry(run)

    def get_many(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
        """Stored results (JSON text) of the (sha256, analyser, version) keys found."""
        from sqlalchemy import select, tuple_  # noqa: PLC0415 - see the module docstring

        from nospy.server import db  # noqa: PLC0415

        t = db.Analysis.__table__
        rows = self._select_in(
            keys,
            lambda chunk: select(t.c.sha256, t.c.analyser, t.c.version, t.c.result).where(
                tuple_(t.c.sha256, t.c.analyser, t.c.version).in_(chunk)
            ),
        )
        return {(sha, analyser, version): result for sha, analyser, version, result in rows}

    def get_by_content(self, hashes: Iterable[str], analysers: dict[str, str]) -> dict[tuple[str, str, str], str]:
        """Stored results (JSON text) of these contents by these analysers (name -> version), in a few queries."""
        from sqlalchemy import select  # noqa: PLC0415 - see the module docstring

        from nospy.server import db  # noqa: PLC0415

        versions = sorted(set(analysers.values()))
        t = db.Analysis.__table__
        rows = self._select_in(
            hashes,
            lambda chunk: select(t.c.sha256, t.c.analyser, t.c.version, t.c.result).where(
                t.c.sha256.in_(chunk), t.c.version.in_(versions)
            ),
        )
        return {
            (sha, analyser, version): result
            for sha, analyser, version, result in rows
            if analysers.get(analyser) == version
        }

    def put_many(
        self, items: dict[tuple[str, str, str], str], stored: dict[str, tuple[str, int]] | None = None
    ) -> None:
        """Store results, and what storage keys unpack to (`get_stored`), in one transaction.

        A key another process stored meanwhile is kept as it is (same inputs, same result).
        """
        from nospy.server import db  # noqa: PLC0415 - see the module docstring

        created = db.now()
        rows = [
            {"sha256": s, "analyser": a, "version": v, "result": r, "created": created}
            for (s, a, v), r in items.items()
        ]
        keys = [{"key": k, "sha256": s, "size": n, "created": created} for k, (s, n) in (stored or {}).items()]
        self._insert_new((db.Analysis, rows), (db.StoredContent, keys))

    def get_stored(self, keys: Iterable[str]) -> dict[str, tuple[str, int]]:
        """The (SHA-256, size) of the content that each known storage key unpacks to."""
        from sqlalchemy import select  # noqa: PLC0415 - see the module docstring

        from nospy.server import db  # noqa: PLC0415

        t = db.StoredContent.__table__
        rows = self._select_in(keys, lambda chunk: select(t.c.key, t.c.sha256, t.c.size).where(t.c.key.in_(chunk)))
        return {key: (sha, size) for key, sha, size in rows}

    def _insert_new(self, *tables: tuple[Any, list[dict[str, Any]]]) -> None:
        """Insert each table's rows, all in one transaction, skipping those whose primary key is already there."""
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415 - see the module docstring
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415

        todo = [(t, rows) for t, rows in tables if rows]
        if not todo:
            return
        dialect = self.engine.dialect.name
        if dialect not in {"sqlite", "postgresql"}:  # pragma: no cover - the service supports SQLite and PostgreSQL
            raise InputError(f"content cache: unsupported database {dialect}")
        insert = sqlite_insert if dialect == "sqlite" else pg_insert

        def run() -> None:
            with self.engine.begin() as conn:
                for t, rows in todo:
                    stmt = insert(t).on_conflict_do_nothing()
                    for i in range(0, len(rows), 500):
                        conn.execute(stmt, rows[i : i + 500])

        _retry(run)

    def get(self, sha256: str, analyser: str, version: str) -> str | None:
        return self.get_many([(sha256, analyser, version)]).get((sha256, analyser, version))


def _retry(job: Callable[[], T]) -> T:
    """Run ``job``, again after a pause when another process holds SQLite's write lock too long."""
    from sqlalchemy.exc import OperationalError  # noqa: PLC0415 - see the module docstring

    for attempt in range(_RETRIES):
        try:
            return job()
        except OperationalError as exc:
            transient = "locked" in str(exc.orig) or "busy" in str(exc.orig)
            if not transient or attempt == _RETRIES - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class FileMemo:
    """One scan's view of the cache: results looked up in batches, new ones written at the end."""

    store: ContentCache | None
    versions: dict[str, str] = field(default_factory=dict)
    _known: dict[tuple[str, str, str], str] = field(default_factory=dict)
    _new: dict[tuple[str, str, str], str] = field(default_factory=dict)
    _looked_up: set[str] = field(default_factory=set)
    _new_stored: dict[str, tuple[str, int]] = field(default_factory=dict)

    def stored(self, keys: Iterable[str]) -> dict[str, tuple[str, int]]:
        """The (SHA-256, size) of the contents these storage keys unpack to, as far as the cache knows."""
        return self.store.get_stored(keys) if self.store is not None else {}

    def remember_stored(self, key: str, sha256: str, size: int) -> None:
        """Keep for `flush`: the file stored as ``key`` unpacked to this content."""
        if self.store is not None:
            self._new_stored[key] = (sha256, size)

    def version(self, analyser: str) -> str:
        if analyser not in self.versions:
            self.versions[analyser] = analysis_version(analyser)
        return self.versions[analyser]

    def prefetch(self, hashes: Iterable[str], analysers: Iterable[str]) -> None:
        """Load the stored results of these contents for these analysers in a few queries."""
        if self.store is None:
            return
        todo = [h for h in set(hashes) if h not in self._looked_up]
        self._looked_up.update(todo)
        self._known.update(self.store.get_by_content(todo, {a: self.version(a) for a in analysers}))

    def get(self, sha256: str, analyser: str, compute: Callable[[], Any]) -> Any:
        """``compute()``'s JSON value for this content, from the cache or computed and kept for `flush`."""
        key = (sha256, analyser, self.version(analyser))
        text = self._known.get(key)
        if text is None and self.store is not None and sha256 not in self._looked_up:
            text = self.store.get(*key)
        if text is None:
            text = json.dumps(compute(), separators=(",", ":"), sort_keys=True)
            self._known[key] = self._new[key] = text
            if self.store is not None:
                self.store.misses += 1
        elif self.store is not None:
            self.store.hits += 1
        return json.loads(text)

    def flush(self) -> None:
        if self.store is not None:
            self.store.put_many(self._new, self._new_stored)
        self._new = {}
        self._new_stored = {}
