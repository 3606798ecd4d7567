"""One monitor: an agreement watched on one transparency log, its state in the service's database.

A round (`Monitor.run_round`):

1. fetch the log's checkpoint, verify its signature, and prove it consistent with the last checkpoint
   this monitor saw of the same log (known by origin and key, wherever it is read from); a log that
   forked is alerted on once and never trusted again (``monitor_logs.forked``);
2. read the entries added since, keep the release manifests of the agreement's products (all
   products when the agreement names none: a monitor must not silently watch nothing), prove each
   one included under the new checkpoint, and record each image it names (its subjects: a release
   may ship several, and every one is checked), in the same transaction as the checkpoint;
3. for each recorded release image not yet checked, in log order: find it in the store (by
   content, see `nospy.monitor.images`), check it (`check_release`), compare it with the product's
   previous checked release (all its images: a clause that failed in none of them and fails now is
   new, whatever order the vendor lists images in) and diff it against the image of the same name or
   else in the same place, store the report and the change, and raise an alert when a clause fails
   that did not before; an image not in the store yet stays "missing" and is tried again next round;
4. deliver the alerts not yet delivered (the outbox), to the webhook if one is set.

Nothing is lost on a crash: every step commits what it finished, and the next round picks up the
releases still pending. A round holds a lock on its log (`nospy.server.db.try_lock`) for all processes
sharing the database; a monitor that finds it held leaves that round to the holder, unless the
holder has shown no sign of life (``monitor_rounds.progress``, renewed as the round reads entries and
checks releases) for longer than ``stale_after``: it is then said to be stuck, for cron to report.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nospy.agreement import Agreement, canonical_json
from nospy.errors import InputError, VerificationError
from nospy.findings import Report, Target
from nospy.firmware.cache import ContentCache
from nospy.keys import VerifierKey
from nospy.ledger.checkpoint import open_checkpoint
from nospy.ledger.interface import open_source
from nospy.ledger.release import read_release
from nospy.monitor import alerts, follow
from nospy.monitor.evaluate import check_release, compare
from nospy.monitor.images import HttpStore, open_store
from nospy.server.db import (
    MonitorAlert,
    MonitorLog,
    MonitorRelease,
    MonitorRound,
    MonitorWatch,
    database_now,
    now,
    try_lock,
)

__all__ = ["ALERT_TYPE", "Monitor", "ReleaseState", "RoundResult"]

ALERT_TYPE = "https://nospy.dev/monitor-alert/v1"
STALE_AFTER = 3600.0  # seconds without a sign of life after which a round in progress is said to be stuck
_PROGRESS_EVERY = 10.0  # seconds between two renewals of a round's sign of life
_MAX_STALE_AFTER = 366 * 86400.0  # a year: beyond, a round is never said to be stuck (and timedelta overflows)
_TAKEOVER_GRACE = 3.0  # seconds a stale round row is given to be taken over (see `Monitor._stuck`)


class ReleaseState:
    PENDING = "pending"
    MISSING = "missing"  # the image is not in the store yet: tried again next round
    DONE = "done"
    ERROR = "error"  # could not be checked (the image changed while it was read ...)


@dataclass
class RoundResult:
    origin: str = ""
    tree_size: int = 0
    new_releases: list[str] = field(default_factory=list)  # a label per release (log entry)
    checked: list[str] = field(default_factory=list)  # a label per image: a release may ship several
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # raised this round
    undelivered: list[str] = field(default_factory=list)  # webhook errors, kept for the next round
    forked: str | None = None  # why the log is not trusted (now or since an earlier round)
    busy: str | None = None  # the round did not run: another monitor holds the log's lock
    stuck: str | None = None  # ... and has shown no sign of life for longer than the monitor's stale_after

    @property
    def alerted(self) -> bool:
        return bool(self.alerts) or self.forked is not None


def _release_label(r: MonitorRelease, *, image: bool = True) -> str:
    """The release and, if it ships several images, which of them this row is (``image``) or how many."""
    if r.image_count == 1:
        return f"{r.product} {r.version} (log index {r.log_index})"
    if not image:
        return f"{r.product} {r.version} (log index {r.log_index}, {r.image_count} images)"
    which = f"image {r.image_index + 1} of {r.image_count}, {r.image_name}"
    return f"{r.product} {r.version} {which} (log index {r.log_index})"


class Monitor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        log: str,
        log_key: VerifierKey,
        agreement: Agreement,
        images: Path | str,
        signed_by: Sequence[str] = (),
        vendor_keys: Sequence[VerifierKey] | None = None,
        webhook: str | None = None,
        say: Callable[[str], None] = lambda _: None,
        cache: ContentCache | None = None,
        stale_after: float = STALE_AFTER,
        downloads: Path | None = None,
    ) -> None:
        # downloads: where images fetched over HTTP are kept; a long download renews the round's sign of life
        self.store = open_store(images, downloads, progress=self._alive)
        if vendor_keys is not None and not vendor_keys:
            raise InputError("a monitor that trusts no vendor key would accept no release: give --trust keys")
        self.sessions, self.location, self.log_key = sessions, log, log_key
        bind = sessions.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError("the monitor's sessions must be bound to an engine")
        self._engine = bind
        self.agreement, self.signed_by = agreement, list(signed_by)
        self.vendor_keys = list(vendor_keys) if vendor_keys is not None else None
        self.webhook = alerts.check_url(webhook) if webhook is not None else None
        if not (math.isfinite(stale_after) and 0 < stale_after <= _MAX_STALE_AFTER):
            raise InputError(f"stale after {stale_after} s: give a number of seconds up to {_MAX_STALE_AFTER:g}")
        self.say, self.cache, self.stale_after = say, cache, stale_after
        self._lock = f"nospy-monitor {log_key.label}"
        self._alive_at = 0.0  # when this monitor last renewed its round's sign of life
        self._token = ""  # its round row's (see `_mine`)
        self.agreement_sha256 = hashlib.sha256(canonical_json(agreement)).hexdigest()
        self.products = set(agreement.products)

    # ---- the round -------------------------------------------------------------------------------------

    def run_round(self) -> RoundResult:
        result = RoundResult()
        # one round at a time per log among every monitor sharing the database (a cron run that overlaps
        # the last one, a monitor of another agreement): two would check the same releases, alert twice,
        # and one could read the other's newer checkpoint as the last seen before its own older one
        with try_lock(self._engine, self._lock) as held:
            if held:
                self._begin_round()
                try:
                    self._round(result)
                finally:
                    # a row that cannot be deleted now (the database is gone) is taken over by the next round
                    with contextlib.suppress(SQLAlchemyError), self.sessions.begin() as s:
                        s.execute(delete(MonitorRound).where(*self._mine()))
            else:
                result.busy = f"another monitor is in a round on the log of key {self.log_key.label}"
                self.say(f"round skipped: {result.busy}")
                result.stuck = self._stuck()
        return result

    def _mine(self) -> tuple[Any, ...]:
        """The round row of this monitor's round: a monitor that lost its lock (a PostgreSQL session
        ended) must not renew or delete the row of the round that took the lock over."""
        return MonitorRound.lock == self._lock, MonitorRound.token == self._token

    def _begin_round(self) -> None:
        """Say who holds the round (a row left by a monitor that was killed is taken over)."""
        self._token = secrets.token_hex(16)
        with self.sessions.begin() as s:
            row = s.get(MonitorRound, self._lock)
            if row is None:
                row = MonitorRound(lock=self._lock)
                s.add(row)
            row.token, row.holder = self._token, f"process {os.getpid()} on {socket.gethostname()}"
            row.started = row.progress = database_now(s)
        self._alive_at = time.monotonic()

    def _alive(self) -> None:
        """Renew the round's sign of life (at most every `_PROGRESS_EVERY` seconds)."""
        if time.monotonic() - self._alive_at < _PROGRESS_EVERY:
            return
        with self.sessions.begin() as s:
            s.execute(update(MonitorRound).where(*self._mine()).values(progress=database_now(s)))
        self._alive_at = time.monotonic()

    def _stuck(self) -> str | None:
        """Why the round another monitor holds looks hung, or None: it showed life within stale_after.

        A stale row is read again after `_TAKEOVER_GRACE`: it may be one a killed monitor left, in the
        moment between another monitor taking the lock and taking the row over.
        """
        first, clock = self._round_row()
        if first is None or not self._quiet(first, clock):
            return None  # it is just starting, or it has shown life
        time.sleep(_TAKEOVER_GRACE)
        row, clock = self._round_row()
        if row is None or row.token != first.token or not self._quiet(row, clock):
            return None
        quiet = clock - row.progress
        return (
            f"the round held by {row.holder} since {row.started.isoformat(timespec='seconds')} has shown no"
            f" progress for {int(quiet.total_seconds())} s (more than {self.stale_after:g} s): it may be hung;"
            " no round of this log runs until it ends"
        )

    def _round_row(self) -> tuple[MonitorRound | None, datetime]:
        """The round row, and the time now by the clock its sign of life was written with."""
        with self.sessions() as s:
            return s.get(MonitorRound, self._lock), database_now(s)

    def _quiet(self, row: MonitorRound, clock: datetime) -> bool:
        return clock - row.progress > timedelta(seconds=self.stale_after)

    def _round(self, result: RoundResult) -> None:
        source = open_source(self.location)
        try:
            signed = follow.latest(source, self.log_key)
        except VerificationError as exc:
            raise VerificationError(f"{self.location}: checkpoint: {exc}") from None
        cp = signed.checkpoint
        result.origin, result.tree_size = cp.origin, cp.size
        self._alive()
        log_id, previous, forked = self._log(cp.origin)
        if forked is None:
            try:
                st = follow.step(source, self.log_key, signed, previous)
            except follow.ForkError as exc:
                assert previous is not None  # noqa: S101 - only a step from a checkpoint seen can fork
                forked = str(exc)
                self._fork(log_id, previous, signed.note, forked, result)
            except follow.UnprovenError as exc:
                assert previous is not None  # noqa: S101 - only a step from a checkpoint seen is behind
                self._unproven(log_id, previous, signed.note, str(exc), result)
                self._check_pending(log_id, result.tree_size, result)
            else:
                result.tree_size = max(cp.size, st.previous_size or 0)  # the tree the state stands on
                if st.behind:
                    self.say(
                        f"log {cp.origin}: its checkpoint has size {cp.size}, older than the size "
                        f"{st.previous_size} seen before and consistent with it: nothing new"
                    )
                else:
                    self._read_new(log_id, st, result)
                self._check_pending(log_id, result.tree_size, result)
        if forked is not None:
            result.forked = forked
            self.say(f"log {cp.origin} is not trusted: {forked}")
        self._prune()
        self._deliver(log_id, result)

    def _prune(self) -> None:
        """Delete the images fetched over HTTP that no release needs any more.

        Kept: the images of releases not checked yet (pending, missing); for each of those, every
        checked image of the release before it (its diff reads one of them, by name or place, see
        `_check_one`); and every checked image of each watch and product's latest release (the next
        release's diff). This covers every monitor that shares the database (and with it the data
        folder's ``images/``).
        """
        if not isinstance(self.store, HttpStore):
            return
        waiting = {ReleaseState.PENDING, ReleaseState.MISSING}
        # (watch, product) -> log index -> checked images; and the log indexes still waiting
        done: dict[tuple[int, str], dict[int, set[str]]] = {}
        pending: dict[tuple[int, str], set[int]] = {}
        keep: set[str] = set()
        with self.sessions() as s:
            rows = s.execute(
                select(
                    MonitorRelease.watch_id,
                    MonitorRelease.product,
                    MonitorRelease.log_index,
                    MonitorRelease.state,
                    MonitorRelease.sha256,
                )
            ).all()
        for watch_id, product, index, state, sha256 in rows:
            if state == ReleaseState.DONE:
                done.setdefault((watch_id, product), {}).setdefault(index, set()).add(sha256)
            elif state in waiting:
                keep.add(sha256)
                pending.setdefault((watch_id, product), set()).add(index)
        for line, releases in done.items():
            indexes = sorted(releases)
            keep.update(releases[indexes[-1]])
            for index in pending.get(line, ()):
                if (at := bisect.bisect_left(indexes, index)) > 0:  # the release before it
                    keep.update(releases[indexes[at - 1]])
        try:
            gone = self.store.prune(keep)
        except OSError as exc:
            self.say(f"fetched images not pruned: {self.store.downloads}: {exc.strerror or exc}")
            return
        if gone:
            self.say(f"deleted {len(gone)} fetched image(s) no release needs any more")

    def _log(self, origin: str) -> tuple[int, str | None, str | None]:
        with self.sessions.begin() as s:
            row = s.scalars(
                select(MonitorLog).where(MonitorLog.origin == origin, MonitorLog.key == self.log_key.label)
            ).first()
            if row is None:
                row = MonitorLog(origin=origin, key=self.log_key.label, location=self.location, size=0)
                s.add(row)
                s.flush()
            return row.id, row.checkpoint, row.forked

    def _log_alert(self, kind: str, previous: str, note: str, reason: str) -> dict[str, Any]:
        """An alert about the log itself, with the two checkpoints signed by its key that are the evidence:
        of a fork (both cannot be true), or of a log that shows less than it committed to."""
        return {
            "type": ALERT_TYPE,
            "kind": kind,
            "log": {"location": self.location, "key": self.log_key.label},
            "reason": reason,
            "previous_checkpoint": previous,
            "checkpoint": note,
        }

    def _fork(self, log_id: int, previous: str, note: str, reason: str, result: RoundResult) -> None:
        payload = self._log_alert("log-fork", previous, note, reason)
        with self.sessions.begin() as s:
            row = s.get_one(MonitorLog, log_id)
            row.forked = reason
            row.location = self.location
            s.add(MonitorAlert(kind="log-fork", log_id=log_id, payload=json.dumps(payload)))
        result.alerts.append(payload)

    def _unproven(self, log_id: int, previous: str, note: str, reason: str, result: RoundResult) -> None:
        """Alert (once per checkpoint served) on a log behind the checkpoint seen that cannot prove it is
        only behind: no fork is proved, so the log stays trusted, and nothing new is read from it."""
        result.tree_size = open_checkpoint(previous, [self.log_key]).checkpoint.size
        self.say(f"log {self.location}: {reason}")
        with self.sessions.begin() as s:
            alerted = s.scalars(
                select(MonitorAlert.payload).where(
                    MonitorAlert.log_id == log_id, MonitorAlert.kind == "log-behind-unproven"
                )
            ).all()
            # the checkpoint's body (origin, size, root): the same tree cosigned again is no new alert
            body = note.split("\n\n", 1)[0]
            if any(json.loads(p)["checkpoint"].split("\n\n", 1)[0] == body for p in alerted):
                return
            payload = self._log_alert("log-behind-unproven", previous, note, reason)
            s.add(MonitorAlert(kind="log-behind-unproven", log_id=log_id, payload=json.dumps(payload)))
        result.alerts.append(payload)

    def _read_new(self, log_id: int, st: follow.Step, result: RoundResult) -> None:
        cp = st.signed.checkpoint
        with self.sessions.begin() as s:
            watch = s.scalars(
                select(MonitorWatch).where(
                    MonitorWatch.log_id == log_id, MonitorWatch.agreement_sha256 == self.agreement_sha256
                )
            ).first()
            if watch is None:
                watch = MonitorWatch(
                    log_id=log_id, agreement_id=self.agreement.id, agreement_sha256=self.agreement_sha256, next_index=0
                )
                s.add(watch)
                s.flush()
            watch_id, start = watch.id, watch.next_index
        # read and prove outside any transaction: a slow log must not hold the database's write lock
        found: list[MonitorRelease] = []
        source = open_source(self.location)
        for index, entry in follow.entries(source, cp.size, start):
            self._alive()
            try:
                _, statement = read_release(entry, self.vendor_keys)
            except (InputError, VerificationError) as exc:
                self.say(f"log index {index}: not a release manifest this monitor accepts: {exc}")
                continue
            product = statement.predicate.product
            if self.products and product not in self.products:
                continue
            follow.verify_included(st, index, entry)  # VerificationError: nothing of this round is kept
            # every image the release ships is checked: a backdoor must not pass by being the second
            found.extend(
                MonitorRelease(
                    watch_id=watch_id,
                    log_index=index,
                    product=product,
                    version=statement.predicate.version,
                    sha256=subject.sha256,
                    image_name=subject.name,
                    image_index=position,
                    image_count=len(statement.subject),
                    tree_size=cp.size,
                    state=ReleaseState.PENDING,
                )
                for position, subject in enumerate(statement.subject)
            )
        # the releases and the checkpoint they were proved under are kept together, or not at all
        with self.sessions.begin() as s:
            # entries read again (a database from before every image of a release was recorded, whose
            # watches migration 0007 sends back to their first release) add only the images missing
            had = {
                (r.log_index, r.image_index): r
                for r in s.scalars(
                    select(MonitorRelease).where(
                        MonitorRelease.watch_id == watch_id,
                        MonitorRelease.log_index.in_({r.log_index for r in found}),
                    )
                )
            }
            for row in found:
                old = had.get((row.log_index, row.image_index))
                if old is None:
                    s.add(row)
                else:
                    old.image_count = row.image_count
            watch = s.get_one(MonitorWatch, watch_id)
            watch.next_index = max(watch.next_index, cp.size)
            log = s.get_one(MonitorLog, log_id)
            log.checkpoint, log.size, log.location = st.signed.note, cp.size, self.location
        seen = {index for index, _ in had}
        added = sum(r.log_index in seen and (r.log_index, r.image_index) not in had for r in found)
        if added:
            self.say(f"recorded {added} image(s) of releases read before, which were not recorded then")
        for row in found:
            if row.image_index == 0 and row.log_index not in seen:
                result.new_releases.append(_release_label(row, image=False))
                self.say(f"new release {_release_label(row, image=False)}")

    def _check_pending(self, log_id: int, tree_size: int, result: RoundResult) -> None:
        with self.sessions() as s:
            ids = s.scalars(
                select(MonitorRelease.id)
                .join(MonitorWatch)
                .where(
                    MonitorWatch.log_id == log_id,
                    MonitorWatch.agreement_sha256 == self.agreement_sha256,
                    MonitorRelease.state.in_([ReleaseState.PENDING, ReleaseState.MISSING]),
                )
                .order_by(MonitorRelease.log_index, MonitorRelease.image_index)
            ).all()
        for release_id in ids:
            self._alive()
            self._check_one(log_id, release_id, tree_size, result)

    def _check_one(self, log_id: int, release_id: int, tree_size: int, result: RoundResult) -> None:
        # what is needed is read first; the check itself runs outside any transaction
        with self.sessions() as s:
            rel = s.get_one(MonitorRelease, release_id)
            label, sha256, image_name = _release_label(rel), rel.sha256, rel.image_name
        found = self.store.find(sha256, image_name)  # from a web store, a download: outside any transaction
        with self.sessions.begin() as s:
            rel = s.get_one(MonitorRelease, release_id)
            if found.path is None:
                rel.state, rel.problem = ReleaseState.MISSING, found.problem
                result.missing.append(f"{label}: {found.problem}")
                self.say(f"missing: {label}: {found.problem}")
                return
            earlier = (
                MonitorRelease.watch_id == rel.watch_id,
                MonitorRelease.product == rel.product,
                MonitorRelease.state == ReleaseState.DONE,
            )
            last = s.scalar(
                select(func.max(MonitorRelease.log_index)).where(*earlier, MonitorRelease.log_index < rel.log_index)
            )
            # the previous release's checked images: this one is compared with all of them (see
            # `compare`), and diffed against the one of the same name, or else in the same place
            images = s.scalars(
                select(MonitorRelease)
                .where(*earlier, MonitorRelease.log_index == last)
                .order_by(MonitorRelease.image_index)
            ).all()
            previous = next((r for r in images if r.image_name == rel.image_name), None) or next(
                (r for r in images if r.image_index == rel.image_index), None
            )
            this, before_row = _describe(rel), _describe(previous) if previous is not None else None
            before_json = previous.report_json if previous is not None else None
            others_json = [r.report_json for r in images if r is not previous and r.report_json]
            origin = _origin(rel, s)
        self.say(f"checking {label}")
        report = check_release(
            self.agreement,
            found.path,
            log=self.location,
            log_key=self.log_key,
            target=Target(path=this["image"], sha256=this["sha256"]),
            signed_by=self.signed_by,
            cache=self.cache,
        )
        read = {src.sha256 for src in report.sources if src.kind == "firmware"}
        if read and read != {this["sha256"]}:  # an unreadable image is a result (errors, not-checked)
            problem = "the image changed in the store while it was checked"
            with self.sessions.begin() as s:
                rel = s.get_one(MonitorRelease, release_id)
                rel.state, rel.problem = ReleaseState.ERROR, problem
            result.errors.append(f"{label}: {problem}")
            return
        before = Report.model_validate_json(before_json) if before_json else None
        old_image, old_problem = None, None
        if before_row is not None:
            old = self.store.find(before_row["sha256"], before_row["image"])
            old_image, old_problem = old.path, old.problem
        others = [Report.model_validate_json(j) for j in others_json]
        change = compare(
            before, report, old_image=old_image, new_image=found.path, old_problem=old_problem, others=others
        )
        verdicts = {v.clause.value: v.status.value for v in report.verdicts}
        with self.sessions.begin() as s:
            rel = s.get_one(MonitorRelease, release_id)
            rel.state, rel.problem, rel.checked = ReleaseState.DONE, None, now()
            rel.previous_id = before_row["id"] if before_row is not None else None
            rel.verdicts_json = json.dumps(verdicts)
            rel.new_failing_json = json.dumps(change.new_failing)
            rel.report_json = report.model_dump_json()
            rel.diff_json = change.model_dump_json()
            if change.new_failing:
                payload = {
                    "type": ALERT_TYPE,
                    "kind": "new-failing-clause",
                    "log": {
                        "origin": origin,
                        "location": self.location,
                        "key": self.log_key.label,
                        "tree_size": tree_size,
                    },
                    "agreement": {"id": self.agreement.id, "sha256": self.agreement_sha256},
                    "release": {**this, "verdicts": verdicts},
                    "previous": before_row,
                    "change": change.model_dump(mode="json"),
                }
                alert = MonitorAlert(kind="new-failing-clause", log_id=log_id, release_id=release_id)
                alert.payload = json.dumps(payload)
                s.add(alert)
                result.alerts.append(payload)
        result.checked.append(label)
        self.say(f"checked {label}: " + ", ".join(f"{c} {v}" for c, v in verdicts.items()))
        if change.new_failing:
            self.say(f"ALERT {label}: newly failing: {', '.join(change.new_failing)}")

    def _deliver(self, log_id: int, result: RoundResult) -> None:
        """Send this log's alerts not yet delivered, oldest first; without a webhook, printing delivers them."""
        with self.sessions() as s:
            pending = s.scalars(
                select(MonitorAlert)
                .where(MonitorAlert.log_id == log_id, MonitorAlert.delivered.is_(False))
                .order_by(MonitorAlert.id)
            ).all()
            for alert in pending:
                self._alive()  # a webhook that times out takes half a minute an alert
                error = None
                if self.webhook is not None:
                    error = alerts.post(self.webhook, alert.payload.encode())
                alert.attempts += 1
                alert.delivered, alert.last_error = error is None, error
                s.commit()
                if error is not None:
                    result.undelivered.append(f"alert {alert.id} ({alert.kind}): {error}")
                    self.say(f"webhook: alert {alert.id} not delivered ({error}); kept for the next round")


def _origin(rel: MonitorRelease, s: Session) -> str:
    watch = s.get_one(MonitorWatch, rel.watch_id)
    return s.get_one(MonitorLog, watch.log_id).origin


def _describe(rel: MonitorRelease) -> dict[str, Any]:
    return {
        "id": rel.id,
        "product": rel.product,
        "version": rel.version,
        "log_index": rel.log_index,
        "sha256": rel.sha256,
        "image": rel.image_name,
        "image_index": rel.image_index,
        "image_count": rel.image_count,
        "verdicts": json.loads(rel.verdicts_json) if rel.verdicts_json else None,
    }
