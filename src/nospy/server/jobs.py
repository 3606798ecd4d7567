"""Checks as background jobs: a queue in the database, worker threads, and recovery after a restart.

A check's state lives only in the database (queued -> running -> done | failed), so nothing is lost
when the server stops: at start-up `recover` puts every check a previous process left ``running``
back in the queue (the inputs are immutable blobs, so running it again gives the same report), or
fails it once it has been interrupted ``max_attempts`` times, so a check that kills the server
cannot do so forever. Workers claim a check with a conditional UPDATE, so two never run the same one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from nospy import agreement as agr
from nospy.errors import NospyError
from nospy.evidence import Kind, build_sources
from nospy.findings import Report, Status, Target
from nospy.keys import read_verifier_key
from nospy.server.db import Check, Event, State, now
from nospy.server.store import BlobStore
from nospy.verify import check as run_check

__all__ = ["Worker", "recover", "run_one"]

log = logging.getLogger("nospy.server")


def _event(session: Session, check_id: str, text: str) -> None:
    session.add(Event(check_id=check_id, text=text[:2000]))
    session.execute(update(Check).where(Check.id == check_id).values(progress=text[:2000], updated=now()))


def recover(sessions: sessionmaker[Session], max_attempts: int) -> list[str]:
    """Requeue or fail the checks a previous server process left running; return their ids."""
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
        return [c.id for c in stuck]


def _claim(sessions: sessionmaker[Session]) -> str | None:
    with sessions.begin() as session:
        candidate = session.scalars(
            select(Check.id).where(Check.state == State.QUEUED.value).order_by(Check.created).limit(1)
        ).first()
        if candidate is None:
            return None
        claimed = session.execute(
            update(Check)
            .where(Check.id == candidate, Check.state == State.QUEUED.value)
            .values(state=State.RUNNING.value, attempts=Check.attempts + 1, updated=now())
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]  # another worker took it first
            return None
        _event(session, candidate, "started")
        return candidate


def _summary(report: Report) -> tuple[str, str]:
    counts = Counter(v.status for v in report.verdicts)
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    if counts[Status.FAIL]:
        return summary, Status.FAIL.value
    return summary, (Status.NOT_CHECKED if counts[Status.NOT_CHECKED] else Status.PASS).value


def _execute(sessions: sessionmaker[Session], store: BlobStore, check_id: str) -> Report:
    def progress(text: str) -> None:
        with sessions.begin() as session:
            _event(session, check_id, text)

    with sessions() as session:
        c = session.get(Check, check_id)
        if c is None:  # claimed just now: only a hand-edited database gets here
            raise NospyError(f"check {check_id} vanished from the database")
        files = [(f.role, f.name, f.sha256) for f in c.files]
    names: dict[str, str] = {}
    agreement_path: Path | None = None
    keys: list[Path] = []
    evidence: dict[str, list[Path]] = {}
    for role, name, digest in files:
        progress(f"verifying {role} {name} (sha256 {digest[:12]}…)")
        path = store.verify(digest)
        names[str(path)] = name
        if role == "agreement":
            agreement_path = path
        elif role == "key":
            keys.append(path)
        else:
            evidence.setdefault(Kind(role).value, []).append(path)
    if agreement_path is None:
        raise NospyError("the check has no agreement")

    def named(exc: NospyError) -> NospyError:
        # messages name the file as uploaded, not the blob store's path
        text = str(exc)
        for path, name in names.items():
            text = text.replace(path, name)
        return type(exc)(text)

    try:
        signed_by: list[str] = []
        if keys:
            verifiers = [read_verifier_key(k) for k in keys]
            progress(f"verifying the agreement's signatures by {', '.join(v.label for v in verifiers)}")
            parsed = agr.verify(agr.read_envelope(agreement_path), verifiers, names[str(agreement_path)])
            signed_by = [v.label for v in verifiers]
        else:
            progress("no party's key given: the agreement's signatures are not verified")
            parsed = agr.load(agreement_path)
        with sessions.begin() as session:
            session.execute(update(Check).where(Check.id == check_id).values(agreement_id=parsed.id))
        sources = build_sources(evidence)
        target = Target(path=names[str(agreement_path)], sha256=agreement_path.name)
        return run_check(parsed, sources, target, signed_by, progress=progress)
    except NospyError as exc:
        raise named(exc) from None


def run_one(sessions: sessionmaker[Session], store: BlobStore) -> str | None:
    """Claim one queued check and run it to done or failed; return its id (None: queue empty)."""
    check_id = _claim(sessions)
    if check_id is None:
        return None
    state, error = State.FAILED, None
    report_json: str | None = None
    summary: str | None = None
    outcome: str | None = None
    try:
        report = _execute(sessions, store, check_id)
    except NospyError as exc:
        error = str(exc)
    except Exception as exc:  # a bug in a source must fail its check, not the worker thread
        log.exception("check %s", check_id)
        error = f"internal error: {type(exc).__name__}: {exc}"
    else:
        state, report_json = State.DONE, report.model_dump_json(exclude_none=True)
        summary, outcome = _summary(report)
    with sessions.begin() as session:
        session.execute(
            update(Check)
            .where(Check.id == check_id)
            .values(state=state.value, error=error, report_json=report_json, summary=summary, outcome=outcome)
        )
        _event(session, check_id, f"failed: {error}" if error else f"done: {summary}")
    return check_id


class Worker:
    """Threads that run queued checks; `wake` after queueing one so it starts at once."""

    def __init__(self, sessions: sessionmaker[Session], store: BlobStore, threads: int = 1) -> None:
        self._sessions, self._store = sessions, store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"nospy-check-{i}", daemon=True) for i in range(threads)
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

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = run_one(self._sessions, self._store)
            except Exception:  # the database went away for a moment: keep serving, try again soon
                log.exception("check worker")
                ran = None
            if ran is None:
                # polling as well as waking: another process may queue checks in a shared database
                self._wake.wait(1.0)
                self._wake.clear()
