"""Checks and image diffs as background jobs: a queue in the database, supervisor threads in the
server, and the work itself in worker processes.

A job's state lives only in the database (queued -> running -> done | failed), so nothing is lost
when the server stops: at start-up `recover` puts every job a previous process left ``running``
back in the queue (the inputs are immutable blobs, so running it again gives the same result), or
fails it once it has been interrupted ``max_attempts`` times, so a job that kills the server cannot
do so forever. Supervisors claim a job with a conditional UPDATE, so two never run the same one.

The work (re-hashing the blobs, unpacking images, parsing captures) runs in a separate process per
supervisor (`ProcessRunner`, started with ``spawn``), which never touches the database: it gets
blob digests, sends progress lines and one result back over a pipe, and the supervisor writes them.
So a hostile input that crashes or hangs its worker fails that one job (a hang after the time
limit), the server goes on answering, and parsing does not hold the server's GIL.
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from nospy.errors import NospyError
from nospy.findings import Report, Status
from nospy.server.db import Check, Diff, Event, State, now
from nospy.server.store import BlobStore

__all__ = ["JobStoppedError", "ProcessRunner", "Validators", "Worker", "recover", "run_one"]

log = logging.getLogger("nospy.server")

Progress = Callable[[str], None]
# (role, name as uploaded, sha256) of each file of a check
FileSpec = tuple[str, str, str]
# the worker processes' names, as ps shows them: check and diff jobs (with the whole stack loaded
# before the first job), and upload validation
CHECK_WORKER, UPLOAD_WORKER = "nospy-check", "nospy-upload"


# ---- the work, in a worker process: blobs in, JSON out, no database --------------------------------------


def _named(text: str, names: dict[str, str]) -> str:
    """A message with every path in ``names`` replaced by the file's name as uploaded."""
    for path, name in names.items():
        text = text.replace(path, name)
    return text


class _Uploaded:
    """The stored files of one job, each under the name it was uploaded with: a symlink in a private
    folder of the store's scratch area, so reports name them as their users do (``conn.log: flows to``,
    ``rx200.bin!squashfs@0x0!/etc/shadow``) and never show the server's own paths."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._dir = Path(tempfile.mkdtemp(prefix="job-", dir=store.root / "tmp"))
        self.names: dict[str, str] = {}

    def add(self, name: str, digest: str, progress: Progress, role: str) -> Path:
        """The blob, re-hashed (a file changed on disk is refused), under its upload name."""
        progress(f"verifying {role} {name} (sha256 {digest[:12]}…)")
        blob = self._store.verify(digest)
        folder = self._dir / str(len(self.names))  # two uploads may share a name
        folder.mkdir()
        # a name longer than a file name may be (255 bytes) keeps its digest on disk; reports still say `name`
        link = folder / (name if len(os.fsencode(name)) <= 240 else digest)
        link.symlink_to(blob)
        self.names[str(link)] = name
        return link

    def text(self, text: str) -> str:
        """A message with every file named as uploaded."""
        return _named(text, self.names)

    def json(self, text: str) -> str:
        """JSON text with every file named as uploaded. The folder is of the store's choosing and the
        names are escaped as in JSON, so the replacement cannot break the syntax."""
        for path, name in self.names.items():
            text = text.replace(json.dumps(path)[1:-1], json.dumps(name)[1:-1])
        return text

    def __enter__(self) -> _Uploaded:
        return self

    def __exit__(self, _type: type[BaseException] | None, exc: BaseException | None, _tb: TracebackType | None) -> None:
        """Remove the folder; nospy's errors leave naming the files as uploaded."""
        shutil.rmtree(self._dir, ignore_errors=True)
        if isinstance(exc, NospyError):
            raise type(exc)(self.text(str(exc))) from None


def compute_check(blob_root: str, files: list[FileSpec], progress: Progress) -> str:
    """Run a check on the stored files; its report as JSON."""
    # the stage stack loads in the worker process only
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.evidence import Kind, build_sources  # noqa: PLC0415
    from nospy.findings import Target  # noqa: PLC0415
    from nospy.keys import read_verifier_key  # noqa: PLC0415
    from nospy.verify import check as run_check  # noqa: PLC0415

    with _Uploaded(BlobStore(Path(blob_root))) as uploaded:
        agreement: tuple[Path, str] | None = None
        keys: list[Path] = []
        evidence: dict[str, list[Path]] = {}
        for role, name, digest in files:
            path = uploaded.add(name, digest, progress, role)
            if role == "agreement":
                agreement = path, digest
            elif role == "key":
                keys.append(path)
            else:
                evidence.setdefault(Kind(role).value, []).append(path)
        if agreement is None:
            raise NospyError("the check has no agreement")
        signed_by: list[str] = []
        if keys:
            verifiers = [read_verifier_key(k) for k in keys]
            progress(f"verifying the agreement's signatures by {', '.join(v.label for v in verifiers)}")
            parsed = agr.verify(agr.read_envelope(agreement[0]), verifiers, agreement[0].name)
            signed_by = [v.label for v in verifiers]
        else:
            progress("no party's key given: the agreement's signatures are not verified")
            parsed = agr.load(agreement[0])
        sources = build_sources(evidence)
        target = Target(path=agreement[0].name, sha256=agreement[1])
        report = run_check(parsed, sources, target, signed_by, progress=progress)
        return uploaded.json(report.model_dump_json(exclude_none=True))


def compute_diff(blob_root: str, old: tuple[str, str], new: tuple[str, str], progress: Progress) -> str:
    """`nospy.firmware.diff` of two stored images, each given as (name, sha256); the result as JSON."""
    from nospy.firmware.diff import diff_reports  # noqa: PLC0415
    from nospy.firmware.scan import scan_report  # noqa: PLC0415

    with _Uploaded(BlobStore(Path(blob_root))) as uploaded:
        paths = [uploaded.add(name, digest, progress, "firmware") for name, digest in (old, new)]
        reports = []
        for path in paths:
            progress(f"scanning {path.name}")
            reports.append(scan_report(path, progress=progress))
        progress("comparing files, inventory and findings")
        result = diff_reports(paths[0], paths[1], reports[0], reports[1])
        return uploaded.json(result.model_dump_json())


def compute_validation(blob_root: str, files: list[FileSpec], progress: Progress) -> str:
    """What a check of these stored files would fail on at once (an agreement, key or evidence that
    cannot be read or used), named as uploaded; empty when they can be checked."""
    del progress  # quick: nothing to report
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.errors import InputError  # noqa: PLC0415
    from nospy.evidence import build_sources  # noqa: PLC0415
    from nospy.keys import read_verifier_key  # noqa: PLC0415

    store = BlobStore(Path(blob_root))
    names = {str(store.path(digest)): name for _, name, digest in files}
    evidence: dict[str, list[Any]] = {}
    try:
        for role, _, digest in files:
            if role == "agreement":
                agr.load(store.path(digest))
            elif role == "key":
                read_verifier_key(store.path(digest))
            else:
                evidence.setdefault(role, []).append(store.path(digest))
        build_sources(evidence)
    except InputError as exc:
        return _named(str(exc), names)
    return ""


_COMPUTE: dict[str, Callable[..., str]] = {
    "check": compute_check,
    "diff": compute_diff,
    "validate": compute_validation,
}


def _prepare(parent: int, name: str) -> None:
    """Ask Linux to kill this process when the server dies (prctl PR_SET_PDEATHSIG), so a worker
    left behind by a crashed server does not go on running a hung job; and name it (PR_SET_NAME),
    so ``ps`` and ``top`` tell check workers from upload validators."""
    if sys.platform != "linux":
        return
    pr_set_pdeathsig, pr_set_name = 1, 15
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the server died before the request took effect
        os._exit(0)
    prctl(pr_set_name, ctypes.c_char_p(name.encode()[:15]))


def _worker_main(conn: Connection, parent: int, name: str) -> None:
    """A worker process: run jobs sent over ``conn`` one after another until the pipe closes."""
    _prepare(parent, name)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    if name == CHECK_WORKER:
        # the stack is loaded before the first job, so a job's time limit does not count the imports
        from nospy import agreement  # noqa: F401, PLC0415
        from nospy.evidence import build_sources  # noqa: PLC0415
        from nospy.firmware import diff, scan  # noqa: F401, PLC0415
        from nospy.verify import check  # noqa: F401, PLC0415

        build_sources({})  # imports every evidence source

    conn.send(("ready", ""))
    while True:
        try:
            kind, args = conn.recv()
        except EOFError:
            return

        def progress(text: str) -> None:
            conn.send(("progress", text))

        try:
            conn.send(("result", _COMPUTE[kind](*args, progress=progress)))
        except NospyError as exc:
            conn.send(("error", str(exc)))
        except Exception as exc:  # a bug in a source must fail its job, not the worker
            log.exception("%s job", kind)
            conn.send(("error", f"internal error: {type(exc).__name__}: {exc}"))


class JobStoppedError(Exception):
    """The server is stopping: the job stays ``running`` in the database and is resumed at the next start."""


def _death(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class ProcessRunner:
    """One worker process, reused job after job; killed and replaced when a job overruns the time
    limit, and replaced when it dies."""

    def __init__(
        self, time_limit: float | None = None, stopping: threading.Event | None = None, name: str = CHECK_WORKER
    ) -> None:
        self.time_limit = time_limit
        self.name = name
        self._stopping = stopping or threading.Event()
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def _start(self) -> Connection:
        ours, theirs = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(theirs, os.getpid(), self.name), name=self.name, daemon=True
        )
        proc.start()
        theirs.close()
        with self._lock:
            self._proc, self._conn = proc, ours
        # the imports take a few seconds on a busy machine; a worker that never gets ready is broken
        deadline = time.monotonic() + 300
        while not ours.poll(0.5):
            if self._stopping.is_set():
                self.close()
                raise JobStoppedError
            if not proc.is_alive() or time.monotonic() > deadline:
                self.close()
                raise NospyError(f"the worker process did not start ({_death(proc.exitcode)})")
        try:
            ours.recv()
        except EOFError:
            self.close()
            raise NospyError(f"the worker process did not start ({_death(proc.exitcode)})") from None
        return ours

    def close(self) -> None:
        """Kill the worker process (the next job starts a new one)."""
        with self._lock:
            proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if proc is not None:
            proc.kill()
            proc.join(10)
        if conn is not None:
            conn.close()

    def run(self, kind: str, args: tuple[Any, ...], progress: Progress) -> tuple[bool, str]:
        """Run one job: (True, result JSON) or (False, why it failed). `JobStoppedError` when stopping."""
        conn = self._conn if self._conn is not None and self._proc and self._proc.is_alive() else None
        if conn is None:
            self.close()
            try:
                conn = self._start()
            except NospyError as exc:
                return False, str(exc)
        conn.send((kind, args))
        deadline = None if self.time_limit is None else time.monotonic() + self.time_limit
        while True:
            if self._stopping.is_set():
                self.close()
                raise JobStoppedError
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                self.close()
                return False, f"stopped after the time limit of {self.time_limit:g} s (the worker process was killed)"
            try:
                if not conn.poll(wait):
                    continue
                tag, text = conn.recv()
            except (EOFError, OSError):
                proc = self._proc
                if self._stopping.is_set():
                    self.close()
                    raise JobStoppedError from None
                if proc is not None:
                    proc.join(10)
                code = proc.exitcode if proc is not None else None
                self.close()
                return False, f"the worker process died ({_death(code)}); the server goes on"
            if tag == "progress":
                progress(text)
            else:
                return tag == "result", text


# ---- the queue: claims, recovery and results, in the server process ---------------------------------------


def _event(session: Session, check_id: str, text: str) -> None:
    session.add(Event(check_id=check_id, text=text[:2000]))
    session.execute(update(Check).where(Check.id == check_id).values(progress=text[:2000], updated=now()))


def recover(sessions: sessionmaker[Session], max_attempts: int) -> list[str]:
    """Requeue or fail the checks and diffs a previous server process left running; return their ids."""
    with sessions.begin() as session:
        stuck = session.scalars(select(Check).where(Check.state == State.RUNNING.value)).all()
        for c in stuck:
            if c.attempts >= max_attempts:
                c.state = State.FAILED.value
                c.error = f"interrupted by a server restart {c.attempts} times; not run again"
                _event(session, c.id, c.error)
            else:
                c.state = State.QUEUED.value
                _event(session, c.id, f"interrupted by a server restart during run {c.attempts}; queued again")
        diffs = session.scalars(select(Diff).where(Diff.state == State.RUNNING.value)).all()
        for d in diffs:
            if d.attempts >= max_attempts:
                d.state = State.FAILED.value
                d.error = d.progress = f"interrupted by a server restart {d.attempts} times; not run again"
            else:
                d.state, d.progress = State.QUEUED.value, "interrupted by a server restart; queued again"
        return [c.id for c in stuck] + [d.id for d in diffs]


def _claim(sessions: sessionmaker[Session], model: type[Check] | type[Diff]) -> str | None:
    with sessions.begin() as session:
        candidate = session.scalars(
            select(model.id).where(model.state == State.QUEUED.value).order_by(model.created).limit(1)
        ).first()
        if candidate is None:
            return None
        claimed = session.execute(
            update(model)
            .where(model.id == candidate, model.state == State.QUEUED.value)
            .values(state=State.RUNNING.value, attempts=model.attempts + 1, updated=now(), progress="started")
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]  # another worker took it first
            return None
        if model is Check:
            _event(session, candidate, "started")
        return candidate


def _summary(report: Report) -> tuple[str, str]:
    counts = Counter(v.status for v in report.verdicts)
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    if counts[Status.FAIL]:
        return summary, Status.FAIL.value
    return summary, (Status.NOT_CHECKED if counts[Status.NOT_CHECKED] else Status.PASS).value


def _run_check(sessions: sessionmaker[Session], store: BlobStore, runner: ProcessRunner, check_id: str) -> None:
    def progress(text: str) -> None:
        with sessions.begin() as session:
            _event(session, check_id, text)

    with sessions() as session:
        check = session.scalars(select(Check).where(Check.id == check_id)).one()
        files = [(f.role, f.name, f.sha256) for f in check.files]
    ok, text = runner.run("check", (str(store.root), files), progress)
    values: dict[str, Any] = {"state": State.FAILED.value, "error": text}
    if ok:
        report = Report.model_validate_json(text)
        summary, outcome = _summary(report)
        values = {"state": State.DONE.value, "report_json": text, "summary": summary, "outcome": outcome}
        values["agreement_id"] = report.agreement.id if report.agreement else None
    with sessions.begin() as session:
        session.execute(update(Check).where(Check.id == check_id).values(**values))
        _event(session, check_id, f"done: {values['summary']}" if ok else f"failed: {text}")


def _run_diff(sessions: sessionmaker[Session], store: BlobStore, runner: ProcessRunner, diff_id: str) -> None:
    def progress(text: str) -> None:
        with sessions.begin() as session:
            session.execute(update(Diff).where(Diff.id == diff_id).values(progress=text[:2000], updated=now()))

    with sessions() as session:
        d = session.scalars(select(Diff).where(Diff.id == diff_id)).one()
        old, new = (d.old_name, d.old_sha256), (d.new_name, d.new_sha256)
    ok, text = runner.run("diff", (str(store.root), old, new), progress)
    values = {"state": State.DONE.value, "result_json": text, "progress": "done"}
    if not ok:
        values = {"state": State.FAILED.value, "error": text, "progress": f"failed: {text}"[:2000]}
    with sessions.begin() as session:
        session.execute(update(Diff).where(Diff.id == diff_id).values(**values))


def run_one(sessions: sessionmaker[Session], store: BlobStore, runner: ProcessRunner) -> str | None:
    """Claim one queued check (or else one diff) and run it to done or failed in ``runner``'s worker
    process; return its id (None: both queues empty). `JobStoppedError` leaves it running."""
    check_id = _claim(sessions, Check)
    if check_id is not None:
        _run_check(sessions, store, runner, check_id)
        return check_id
    diff_id = _claim(sessions, Diff)
    if diff_id is not None:
        _run_diff(sessions, store, runner, diff_id)
    return diff_id


class Validators:
    """Worker processes that read an upload's agreement, keys and evidence before the check is queued,
    so a hostile agreement (a megabyte of YAML takes tens of seconds to parse) neither holds the
    server's GIL nor runs without a time limit. Each process validates one upload at a time."""

    def __init__(self, processes: int = 1, time_limit: float | None = 120.0) -> None:
        self._stop = threading.Event()
        self._runners = [ProcessRunner(time_limit, self._stop, UPLOAD_WORKER) for _ in range(processes)]
        self._idle: queue.Queue[ProcessRunner] = queue.Queue()
        for r in self._runners:
            self._idle.put(r)

    def validate(self, blob_root: Path, files: list[FileSpec]) -> str:
        """Why these stored files cannot be checked, or empty. `JobStoppedError` when stopping."""
        runner = self._idle.get()
        try:
            ok, text = runner.run("validate", (str(blob_root), files), lambda _: None)
        finally:
            self._idle.put(runner)
        return text if ok else f"the upload could not be read: {text}"

    def stop(self) -> None:
        self._stop.set()
        for r in self._runners:
            r.close()


class Worker:
    """Supervisor threads, each with its worker process, that run queued jobs; `wake` after
    queueing one so it starts at once."""

    def __init__(
        self, sessions: sessionmaker[Session], store: BlobStore, processes: int = 1, time_limit: float | None = None
    ) -> None:
        self._sessions, self._store = sessions, store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._runners = [ProcessRunner(time_limit, self._stop) for _ in range(processes)]
        self._threads = [
            threading.Thread(target=self._loop, args=(r,), name=f"nospy-check-{i}", daemon=True)
            for i, r in enumerate(self._runners)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        for r in self._runners:
            r.close()

    def _loop(self, runner: ProcessRunner) -> None:
        while not self._stop.is_set():
            try:
                ran = run_one(self._sessions, self._store, runner)
            except JobStoppedError:
                return
            except Exception:  # the database went away for a moment: keep serving, try again soon
                log.exception("check worker")
                ran = None
            if ran is None:
                # polling as well as waking: another process may queue checks in a shared database
                self._wake.wait(1.0)
                self._wake.clear()
