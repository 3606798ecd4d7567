"""The service's database: checks, their files and progress events, API tokens, and the content cache
of firmware analysis results (SQLAlchemy 2).

The schema is created and upgraded by the Alembic migrations in ``migrations/`` (run at start-up);
these models must match them, which a test checks with Alembic's autogenerate comparison.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Engine,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

__all__ = [
    "Analysis",
    "Base",
    "Check",
    "Diff",
    "Event",
    "File",
    "MonitorAlert",
    "MonitorLog",
    "MonitorRelease",
    "MonitorRound",
    "MonitorWatch",
    "State",
    "Token",
    "connect",
    "database_now",
    "migrate",
    "now",
    "try_lock",
]


def now() -> datetime:
    return datetime.now(UTC)


def database_now(session: Session) -> datetime:
    """The database server's clock where it has one of its own (PostgreSQL), else this host's (SQLite
    is a file on this host): times that processes on several hosts write and compare (a monitor
    round's sign of life) are all read from one clock, whatever the hosts' clocks say."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.clock_timestamp()))  # now() is the transaction's start
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC)
    return now()


class State(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (State.DONE, State.FAILED)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that reads back with its time zone (UTC) from SQLite too, which stores none."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Token(Base):
    """An API token; only its SHA-256 is stored, so the database alone lets nobody write."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Job:
    """What every background job (a check, an image diff) has: its place in the queue, its runs,
    its latest progress line, and why it failed."""

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)
    created_by: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default=State.QUEUED.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)


class Check(Job, Base):
    __tablename__ = "checks"
    agreement_id: Mapped[str | None] = mapped_column(String(128), default=None)
    summary: Mapped[str | None] = mapped_column(String(256), default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)  # pass / fail / not-checked
    report_json: Mapped[str | None] = mapped_column(Text, default=None)
    files: Mapped[list[File]] = relationship(back_populates="check", order_by="File.id", cascade="all, delete-orphan")
    events: Mapped[list[Event]] = relationship(
        back_populates="check", order_by="Event.id", cascade="all, delete-orphan"
    )


class File(Base):
    """An uploaded file of a check: the agreement, a party's key, or evidence of one kind."""

    __tablename__ = "files"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))  # agreement, key, or an evidence kind
    name: Mapped[str] = mapped_column(String(255))  # as uploaded, for display only
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    check: Mapped[Check] = relationship(back_populates="files")


class Event(Base):
    """One line of a check's progress."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[str] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    text: Mapped[str] = mapped_column(Text)
    check: Mapped[Check] = relationship(back_populates="events")


class Analysis(Base):
    """One analyser's result on one content (a file's bytes, a password hash, a whole image's report).

    Keyed by what the result depends on and nothing else: the content's SHA-256, the analyser, and the
    analysis version (a digest of the analyser's code, its rule files and nospy's version), so a rule
    update misses the cache. Where a result is found (path, container chain) is bound again per scan.
    """

    __tablename__ = "analyses"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    analyser: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[str] = mapped_column(Text)  # JSON
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class StoredContent(Base):
    """The content a file's stored form unpacks to, so an unchanged file is known without unpacking it.

    ``key`` is a digest of how a filesystem stores the file (for squashfs: its compressed blocks, its
    fragment and the compression; see `nospy.firmware.unpack.Filesystem.storage_key`); the same key
    always unpacks to the same bytes, whose SHA-256 and size are kept here.
    """

    __tablename__ = "stored_contents"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


# ---- `nospy monitor`: logs followed, releases checked, alerts raised (migration 0003_monitor) ----------


class MonitorLog(Base):
    """A transparency log the monitor follows, known by its origin and key (not by where it is read)."""

    __tablename__ = "monitor_logs"
    __table_args__ = (UniqueConstraint("origin", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    origin: Mapped[str] = mapped_column(String(512))
    key: Mapped[str] = mapped_column(String(512))  # the verifier key's label (name+hash)
    location: Mapped[str] = mapped_column(Text)  # where it was read last
    checkpoint: Mapped[str | None] = mapped_column(Text, default=None)  # last verified checkpoint note
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    forked: Mapped[str | None] = mapped_column(Text, default=None)  # why the log is no longer trusted
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class MonitorWatch(Base):
    """One agreement followed on one log: how far its entries have been read."""

    __tablename__ = "monitor_watches"
    __table_args__ = (UniqueConstraint("log_id", "agreement_sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    log_id: Mapped[int] = mapped_column(ForeignKey("monitor_logs.id", ondelete="CASCADE"), index=True)
    agreement_id: Mapped[str] = mapped_column(String(128))
    agreement_sha256: Mapped[str] = mapped_column(String(64))  # of its canonical JSON
    next_index: Mapped[int] = mapped_column(BigInteger, default=0)


class MonitorRelease(Base):
    """An image of a release of one of a watched agreement's products, and its check: a release whose
    manifest names several images (subjects) has a row for each."""

    __tablename__ = "monitor_releases"
    __table_args__ = (UniqueConstraint("watch_id", "log_index", "image_index", name="uq_monitor_releases_image"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    watch_id: Mapped[int] = mapped_column(ForeignKey("monitor_watches.id", ondelete="CASCADE"), index=True)
    log_index: Mapped[int] = mapped_column(BigInteger)
    product: Mapped[str] = mapped_column(String(256), index=True)
    version: Mapped[str] = mapped_column(String(256))
    sha256: Mapped[str] = mapped_column(String(64))
    image_name: Mapped[str] = mapped_column(String(1024))  # the manifest's subject name (display only)
    image_index: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # its place among the subjects
    image_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # the manifest's subjects
    tree_size: Mapped[int] = mapped_column(BigInteger)  # the checkpoint its inclusion was verified under
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending, missing, done, error
    problem: Mapped[str | None] = mapped_column(Text, default=None)
    found: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    checked: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    previous_id: Mapped[int | None] = mapped_column(Integer, default=None)  # the release it was diffed against
    verdicts_json: Mapped[str | None] = mapped_column(Text, default=None)  # {clause: status}
    new_failing_json: Mapped[str | None] = mapped_column(Text, default=None)  # [clause, ...]
    report_json: Mapped[str | None] = mapped_column(Text, default=None)
    diff_json: Mapped[str | None] = mapped_column(Text, default=None)


class MonitorRound(Base):
    """A monitor's round in progress on a log (see `try_lock`), so another monitor can tell a long round
    from a hung one. The row goes when the round ends; one left by a killed monitor is taken over by
    the next monitor that gets the lock."""

    __tablename__ = "monitor_rounds"
    lock: Mapped[str] = mapped_column(String(600), primary_key=True)  # the lock's name
    token: Mapped[str] = mapped_column(String(32))  # the round's own: only it renews or deletes the row
    holder: Mapped[str] = mapped_column(String(300))  # process and host
    started: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    progress: Mapped[datetime] = mapped_column(UTCDateTime, default=now)  # its last sign of life


class MonitorAlert(Base):
    """An alert, kept until its webhook took it (an outbox: a webhook that is down loses nothing)."""

    __tablename__ = "monitor_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    kind: Mapped[str] = mapped_column(String(32))  # new-failing-clause, log-fork, log-behind-unproven
    log_id: Mapped[int] = mapped_column(ForeignKey("monitor_logs.id", ondelete="CASCADE"), index=True)
    release_id: Mapped[int | None] = mapped_column(Integer, default=None)
    payload: Mapped[str] = mapped_column(Text)  # the JSON document posted
    delivered: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class Diff(Job, Base):
    """What changed between two uploaded firmware images (`nospy.firmware.diff`), computed once per
    pair of images: its id is derived from the two images' SHA-256, and its result never changes."""

    __tablename__ = "diffs"
    old_check: Mapped[str] = mapped_column(String(32))  # the checks the images were first compared from
    new_check: Mapped[str] = mapped_column(String(32))
    old_name: Mapped[str] = mapped_column(String(255))
    new_name: Mapped[str] = mapped_column(String(255))
    old_sha256: Mapped[str] = mapped_column(String(64))
    new_sha256: Mapped[str] = mapped_column(String(64))
    result_json: Mapped[str | None] = mapped_column(Text, default=None)


def connect(url: str) -> tuple[Engine, sessionmaker]:  # type: ignore[type-arg]
    """An engine and session factory for ``url``; SQLite is set up for many threads and one writer."""
    if url.startswith("sqlite"):
        # as many connections as request threads (anyio's default 40) plus the check workers
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=16, max_overflow=32
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn: object, _record: object) -> None:
            cur = conn.cursor()  # type: ignore[attr-defined]
            # WAL lets readers go on while a check's progress is written; foreign keys are off by default
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    else:
        engine = create_engine(url, pool_size=16, max_overflow=32, pool_pre_ping=True)
    return engine, sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to the newest migration (or to ``revision``)."""
    from alembic import command  # noqa: PLC0415 - Alembic is loaded only to migrate (the content cache reads the db)
    from alembic.config import Config  # noqa: PLC0415

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("nospy.server") / "migrations"))
    # processes sharing a database (serve, monitor, history, fleet workers) may start together: one
    # migrates while the others wait, or two would both see an empty database and create its tables
    with _migration_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7034171)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on a file beside a SQLite database file (SQLite's own DDL is not serialised
    by Alembic's transaction); nothing for other databases, which lock inside the transaction."""
    path = _sqlite_file(engine)
    if path is None:
        yield
        return
    with _file_lock(Path(f"{path}.migrate-lock"), wait=True):
        yield


@contextmanager
def try_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Hold the lock ``name`` among all processes that share this database, if no other holds it;
    yields whether it is held (it is never waited for).

    PostgreSQL: a session advisory lock, on a connection kept out of the pool while the lock is held.
    SQLite: ``flock`` on a file beside the database file. Both locks go with the process or connection
    that holds them, so a holder that is killed never leaves its lock behind. A SQLite database in
    memory belongs to one process: the lock is always held.
    """
    digest = hashlib.sha256(name.encode()).digest()
    if engine.url.get_backend_name() == "postgresql":
        key = int.from_bytes(digest[:8], "big", signed=True)
        with engine.connect() as conn:
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            conn.commit()  # the lock outlives the transaction; an idle transaction might be timed out
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                        conn.commit()
                    except SQLAlchemyError:
                        conn.invalidate()  # closing the connection is what frees a session's locks
        return
    path = _sqlite_file(engine)
    if path is None:
        yield True
        return
    with _file_lock(Path(f"{path}.lock-{digest[:8].hex()}"), wait=False) as held:
        yield held


def _sqlite_file(engine: Engine) -> str | None:
    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    return None if not path or path == ":memory:" else path


@contextmanager
def _file_lock(path: Path, *, wait: bool) -> Iterator[bool]:
    # flock, not fcntl's record locks: two opens of the file in one process exclude each other too
    with path.open("a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
