"""Storage and reliability: migrations match the models, a check interrupted by a server crash is
resumed (never lost), and everything runs the same on PostgreSQL."""

from __future__ import annotations

import io
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select
from sqlalchemy.exc import IntegrityError

from nospy import keys
from nospy.agreement import load as load_agreement
from nospy.monitor import Monitor
from nospy.monitor import run as monitor_run
from nospy.server.db import Base, Check, File, MonitorRelease, State, connect, migrate, try_lock
from nospy.server.jobs import CHECK_WORKER, UPLOAD_WORKER, ProcessRunner, Validators, recover, run_one
from nospy.server.store import BlobStore
from serverlib import EXAMPLE_AGREEMENT, Postgres, Server, bearer, new_token, running, submit, wait_finished


def _schema_diff(url: str) -> list[object]:
    engine, _ = connect(url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as conn:
        diff: list[object] = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    return diff


def test_migrations_build_exactly_the_models_schema(tmp_path: Path) -> None:
    assert _schema_diff(f"sqlite:///{tmp_path / 'm.db'}") == []


def _migrate_at(url: str, start: float) -> None:
    time.sleep(max(0.0, start - time.time()))
    engine, _ = connect(url)
    migrate(engine)
    engine.dispose()


def test_processes_starting_together_migrate_one_database_once(tmp_path: Path) -> None:
    """serve, monitor and history may start at once on a new database: none may fail creating its tables."""
    url = f"sqlite:///{tmp_path / 'nospy.db'}"
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 3  # after every process has imported SQLAlchemy and Alembic
    procs = [ctx.Process(target=_migrate_at, args=(url, start)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    with sqlite3.connect(tmp_path / "nospy.db") as con:
        assert con.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)


def test_recover_requeues_then_fails_after_max_attempts(tmp_path: Path) -> None:
    engine, sessions = connect(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    with sessions.begin() as s:
        s.add(Check(id="a" * 32, created_by="t", state=State.RUNNING.value, attempts=1, progress=""))
        s.add(Check(id="b" * 32, created_by="t", state=State.RUNNING.value, attempts=2, progress=""))
        s.add(Check(id="c" * 32, created_by="t", state=State.DONE.value, attempts=1, progress=""))
    assert sorted(recover(sessions, max_attempts=2)) == ["a" * 32, "b" * 32]
    with sessions() as s:
        states = {c.id[0]: (c.state, c.error) for c in s.scalars(select(Check))}
    assert states["a"] == ("queued", None)
    assert states["b"] == ("failed", "interrupted by a server restart 2 times; not run again")
    assert states["c"] == ("done", None)
    engine.dispose()


def _states(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT id, state FROM checks").fetchall())


def _large_agreement() -> bytes:
    """The example agreement with 2,000 declared endpoints: valid, and slow enough to parse that a
    check stays running long enough to be caught mid-run."""
    endpoints = "".join(f"  - {{host: h{i}.acme.example, port: 443}}\n" for i in range(2000))
    return EXAMPLE_AGREEMENT.read_text().replace("endpoints:\n", "endpoints:\n" + endpoints, 1).encode()


def test_checks_survive_a_server_crash(tmp_path: Path) -> None:
    """Kill -9 the server while a check runs; after a restart every check finishes, none is lost."""
    data = tmp_path / "serve"
    token = new_token(data, "crash")
    server = Server(data).start()
    try:
        assert server.proc is not None
        large = [("agreement", ("large.yaml", _large_agreement()))]
        small = [("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))]
        ids = []
        for files in (large, small, large, small, small):
            r = submit(server.url, token, files)
            assert r.status_code == 202
            ids.append(r.json()["id"])
        # freeze the process and look at the database: kill it only while a check is running
        for _attempt in range(2000):
            os.kill(server.proc.pid, signal.SIGSTOP)
            states = _states(data / "nospy.db")
            if "running" in states.values():
                break
            os.kill(server.proc.pid, signal.SIGCONT)
            time.sleep(0.005)
        else:
            pytest.fail("never saw a running check")
        interrupted = [i for i, s in states.items() if s == "running"]
        server.kill()
    finally:
        server.stop()
    assert _states(data / "nospy.db")[interrupted[0]] == "running"  # the crash left it mid-run

    with running(data) as restarted:
        finished = [wait_finished(restarted.url, i, token) for i in ids]
        assert [c["state"] for c in finished] == ["done"] * len(ids)
        again = httpx.get(f"{restarted.url}/api/checks/{interrupted[0]}", headers=bearer(token)).json()
        texts = [e["text"] for e in again["events"]]
        assert "interrupted by a server restart during run 1; queued again" in texts
        assert again["attempts"] == 2 and again["summary"] == "8 not-checked"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    try:
        pg = Postgres()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def test_postgresql_migrations_and_a_check(postgres: Postgres, tmp_path: Path) -> None:
    assert _schema_diff(postgres.url) == []
    data = tmp_path / "serve"
    token = new_token(data, "pg", postgres.url)
    with running(data, {"NOSPY_DATABASE_URL": postgres.url}) as server:
        r = submit(server.url, token, [("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))])
        assert r.status_code == 202
        check = wait_finished(server.url, r.json()["id"], token)
        assert check["state"] == "done" and check["summary"] == "8 not-checked"
        assert check["created"].endswith("Z") or check["created"].endswith("+00:00")
    assert not (data / "nospy.db").exists()  # nothing went to SQLite


_OLD_RELEASE = (
    "INSERT INTO monitor_releases (watch_id, log_index, product, version, sha256, image_name, tree_size, state,"
    " found) SELECT id, 7, 'acme-rx200', '1.0', '{}', 'rx200-1.0.img', 8, 'done', '2026-01-01' FROM monitor_watches"
)


def _releases_keep_their_rows_and_gain_images(url: str) -> None:
    """A database holding releases from before a release could have several images: its rows are kept
    (as each release's only image), and a release may then have a row per image, but not two for one."""
    engine, _ = connect(url)
    migrate(engine, "0006_rounds")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [("0006_rounds",)]
        conn.exec_driver_sql(
            "INSERT INTO monitor_logs (origin, key, location, size, updated)"
            " VALUES ('log.example', 'k+1', 'http://log.example', 8, '2026-01-01')"
        )
        conn.exec_driver_sql(
            "INSERT INTO monitor_watches (log_id, agreement_id, agreement_sha256, next_index)"
            " SELECT id, 'a', 'b', 8 FROM monitor_logs"
        )
        conn.exec_driver_sql(_OLD_RELEASE.format("0" * 64))
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT watch_id, log_index, image_name, image_index, image_count, state FROM monitor_releases"
        ).all()
        watch = rows[0][0] if rows else None
        assert [tuple(r) for r in rows] == [(watch, 7, "rx200-1.0.img", 0, 1, "done")]
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    _, sessions = connect(url)
    with sessions.begin() as s:
        s.add(MonitorRelease(watch_id=watch, log_index=7, product="acme-rx200", version="1.0", sha256="1" * 64,
                             image_name="boot.img", image_index=1, image_count=2, tree_size=8, state="pending"))  # fmt: skip
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(MonitorRelease(watch_id=watch, log_index=7, product="acme-rx200", version="1.0", sha256="2" * 64,
                             image_name="again.img", image_index=1, image_count=2, tree_size=8, state="pending"))  # fmt: skip
    engine.dispose()


def test_releases_gain_images_on_sqlite(tmp_path: Path) -> None:
    _releases_keep_their_rows_and_gain_images(f"sqlite:///{tmp_path / 'old.db'}")


def test_releases_gain_images_on_postgresql(postgres: Postgres) -> None:
    engine = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # a database of its own: the module's is at the newest schema already
        conn.exec_driver_sql("CREATE DATABASE before_images")
    engine.dispose()
    _releases_keep_their_rows_and_gain_images(postgres.url.rsplit("/", 1)[0] + "/before_images")


def test_a_stuck_round_is_judged_by_the_database_clock(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Monitors on several hosts share PostgreSQL: a round's sign of life is written and judged by the
    server's clock, so a holder whose clock is two hours behind is not taken for hung, and a round
    quiet for two hours by the server's clock is, whatever the hosts' clocks say."""
    engine, sessions = connect(postgres.url)
    migrate(engine)
    key = keys.generate("log.example/clock").verifier

    def monitor() -> Monitor:
        agreement = load_agreement(EXAMPLE_AGREEMENT)
        return Monitor(sessions, log="http://127.0.0.1:9/", log_key=key, agreement=agreement, images=tmp_path)

    holder, other = monitor(), monitor()
    with monkeypatch.context() as m:
        m.setattr(monitor_run, "now", lambda: datetime.now(UTC) - timedelta(hours=2))  # the holder's host
        holder._begin_round()
    with monkeypatch.context() as m:
        m.setattr(monitor_run, "now", lambda: datetime.now(UTC) + timedelta(hours=2))  # the reader's host
        assert other._stuck() is None
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE monitor_rounds SET progress = clock_timestamp() - interval '2 hours'")
    with monkeypatch.context() as m:
        m.setattr(monitor_run, "now", lambda: datetime.now(UTC) - timedelta(hours=3))
        stuck = other._stuck()
    assert stuck is not None and re.search(r"has shown no progress for 72\d\d s", stuck), stuck
    engine.dispose()


_HOLD = """
import sys, time
from nospy.server.db import connect, try_lock
engine, _ = connect(sys.argv[1])
with try_lock(engine, "a log") as held:
    print(held, flush=True)
    time.sleep(600)
"""


def _try_lock_across_processes(url: str) -> None:
    """A lock another process holds is not taken, one held here is not taken twice, and the lock of a
    process killed while it held it is free again."""
    engine, _ = connect(url)
    migrate(engine)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        with try_lock(engine, "a log") as held:
            assert not held
        with try_lock(engine, "another log") as held:
            assert held
            with try_lock(engine, "another log") as again:
                assert not again
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 30  # PostgreSQL ends the killed process's session soon, not at once
    while True:
        with try_lock(engine, "a log") as held:
            if held or time.monotonic() > deadline:
                break
        time.sleep(0.2)
    assert held
    engine.dispose()


def test_try_lock_on_sqlite(tmp_path: Path) -> None:
    _try_lock_across_processes(f"sqlite:///{tmp_path / 'lock.db'}")


def test_try_lock_on_postgresql(postgres: Postgres) -> None:
    _try_lock_across_processes(postgres.url)


def test_a_check_job_verifies_its_files_and_names_unsupported_evidence(tmp_path: Path) -> None:
    """The worker's own path (not the upload's checks): blobs re-hashed, evidence handed to build_sources."""
    engine, sessions = connect(f"sqlite:///{tmp_path / 'j.db'}")
    migrate(engine)
    store = BlobStore(tmp_path / "blobs")
    agreement, _ = store.put(io.BytesIO(EXAMPLE_AGREEMENT.read_bytes()), 1 << 20)
    image, size = store.put(io.BytesIO(b"\x27\x05\x19\x56" + bytes(60)), 1 << 20)

    def queue(check_id: str, files: list[tuple[str, str, str]]) -> None:
        with sessions.begin() as s:
            c = Check(id=check_id, created_by="t", state=State.QUEUED.value, attempts=0, progress="")
            c.files = [File(role=r, name=n, sha256=d, size=size) for r, n, d in files]
            s.add(c)

    queue("a" * 32, [("agreement", "agreement.yaml", agreement), ("log", "router.tlog-proof", image)])
    runner = ProcessRunner(time_limit=600)
    assert run_one(sessions, store, runner) == "a" * 32
    with sessions() as s:
        c = s.get(Check, "a" * 32)
        assert c is not None and c.state == "failed"
        assert c.error == "log evidence is not supported by this build of nospy yet"
        assert f"verifying log router.tlog-proof (sha256 {image[:12]}…)" in [e.text for e in c.events]

    # a stored file that changed on disk is refused, not checked
    store.path(agreement).write_bytes(EXAMPLE_AGREEMENT.read_bytes().replace(b"IN", b"SG"))
    queue("b" * 32, [("agreement", "agreement.yaml", agreement)])
    assert run_one(sessions, store, runner) == "b" * 32
    with sessions() as s:
        c = s.get(Check, "b" * 32)
        assert c is not None and c.state == "failed" and c.error == f"stored file {agreement} has changed on disk"
    assert run_one(sessions, store, runner) is None  # queue empty
    runner.close()
    engine.dispose()


def test_several_workers_never_run_one_check_twice(tmp_path: Path) -> None:
    data = tmp_path / "serve"
    token = new_token(data, "workers")
    with running(data, {"NOSPY_WORKERS": "3"}) as server:
        files = [("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))]
        ids = [submit(server.url, token, files).json()["id"] for _ in range(15)]
        finished = [wait_finished(server.url, i, token) for i in ids]
    assert {c["state"] for c in finished} == {"done"}
    for c in finished:
        assert c["attempts"] == 1
        assert [e["text"] for e in c["events"]].count("started") == 1


def _workers(pid: int, name: str = CHECK_WORKER) -> list[int]:
    """The worker processes of process ``pid`` that have this name, from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if Path(f"/proc/{child}/comm").read_text().strip() == name:
                found.append(int(child))
    return found


def _wait_running(url: str, check_id: str, token: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/api/checks/{check_id}", headers=bearer(token)).json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _stopped_worker(server: Server, token: str) -> int:
    """Run one check so the worker process is up, then stop that process with SIGSTOP: the next check
    is sent to a worker that will never answer, whatever the machine's speed."""
    assert server.proc is not None
    first = wait_finished(server.url, submit(server.url, token, SMALL).json()["id"], token)
    assert first["state"] == "done", first["error"]
    (worker,) = _workers(server.proc.pid)
    os.kill(worker, signal.SIGSTOP)
    return worker


SMALL = [("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))]


def test_a_crashed_worker_fails_its_check_and_the_server_goes_on(tmp_path: Path) -> None:
    """A worker process that dies fails only its check; the next check runs in a new worker process."""
    data = tmp_path / "serve"
    token = new_token(data, "crash")
    with running(data) as server:
        assert server.proc is not None
        worker = _stopped_worker(server, token)
        crashed = submit(server.url, token, SMALL).json()["id"]
        _wait_running(server.url, crashed, token)
        os.kill(worker, signal.SIGKILL)
        failed = wait_finished(server.url, crashed, token)
        assert failed["state"] == "failed"
        assert failed["error"] == "the worker process died (killed by SIGKILL); the server goes on"
        after = wait_finished(server.url, submit(server.url, token, SMALL).json()["id"], token)
        assert after["state"] == "done", after["error"]
        assert _workers(server.proc.pid) != [worker]


def test_a_hung_worker_is_killed_after_the_time_limit_and_the_server_goes_on(tmp_path: Path) -> None:
    """The time limit is kept by the server, not by the worker: a worker that never answers (here
    stopped with SIGSTOP, as one hung in native code would be) is killed when its check overruns."""
    data = tmp_path / "serve"
    token = new_token(data, "limits")
    with running(data, {"NOSPY_TIME_LIMIT": "3"}) as server:
        assert server.proc is not None
        worker = _stopped_worker(server, token)
        hung = wait_finished(server.url, submit(server.url, token, SMALL).json()["id"], token)
        assert hung["state"] == "failed"
        assert hung["error"] == "stopped after the time limit of 3 s (the worker process was killed)"
        assert not Path(f"/proc/{worker}").exists()  # killed and reaped
        after = wait_finished(server.url, submit(server.url, token, SMALL).json()["id"], token)
        assert after["state"] == "done", after["error"]
        assert _workers(server.proc.pid) != [worker]


def test_uploads_are_read_in_a_validator_process_with_a_time_limit(tmp_path: Path) -> None:
    """The server reads an upload's agreement in a separate process: a bad one is refused with its
    upload name, and a validator that never answers is killed after its time limit."""
    store = BlobStore(tmp_path / "blobs")
    good, _ = store.put(io.BytesIO(EXAMPLE_AGREEMENT.read_bytes()), 1 << 20)
    bad, _ = store.put(io.BytesIO(b"id: x\nparties: [\n"), 1 << 20)
    validators = Validators(1, time_limit=3)
    try:
        assert validators.validate(store.root, [("agreement", "agreement.yaml", good)]) == ""
        problem = validators.validate(store.root, [("agreement", "mine.yaml", bad)])
        assert problem.startswith("mine.yaml") and str(store.root) not in problem
        (validator,) = _workers(os.getpid(), UPLOAD_WORKER)
        os.kill(validator, signal.SIGSTOP)
        problem = validators.validate(store.root, [("agreement", "agreement.yaml", good)])
        assert (
            problem
            == "the upload could not be read: stopped after the time limit of 3 s (the worker process was killed)"
        )
        assert validators.validate(store.root, [("agreement", "agreement.yaml", good)]) == ""
        assert _workers(os.getpid(), UPLOAD_WORKER) != [validator]
    finally:
        validators.stop()
