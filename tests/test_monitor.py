"""`nospy monitor` and `nospy history` end to end, with real parts: a log written by nospy's own log
writer and served over HTTP, releases signed by a vendor key, squashfs images packed by Debian's
mksquashfs from the example root filesystem, a webhook receiver on a real socket, and the service's
database (SQLite here; PostgreSQL runs the same models in test_server_storage)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from nospy import dsse, keys
from nospy.agreement import load as load_agreement
from nospy.cli import run
from nospy.errors import InputError
from nospy.firmware.rootfs import EXAMPLE_BACKDOOR, build_example, clone, plant
from nospy.ledger.checkpoint import cosign
from nospy.ledger.interface import open_source
from nospy.ledger.release import entry_bytes, make_release, sha256_file
from nospy.ledger.server import LogServer
from nospy.ledger.storage import LogWriter, init_log
from nospy.monitor import Monitor, follow, history
from nospy.monitor import run as monitor_run
from nospy.monitor.images import HttpStore, find_image
from nospy.server.db import MonitorLog, MonitorRelease, MonitorWatch, connect, migrate
from serverlib import EXAMPLE_AGREEMENT, bearer, new_token, running

ORIGIN = "log.acme.example/rx200"
TOKEN = "monitor-test-write-token"
PRODUCT = "acme-rx200"


def _squashfs(root: Path, image: Path) -> Path:
    subprocess.run(
        ["mksquashfs", str(root), str(image), "-comp", "gzip", "-all-root", "-noappend", "-quiet"],
        check=True,
        capture_output=True,
    )
    return image


@dataclass
class Images:
    """Three releases of the example product: 1.0 clean, 1.1 with the planted backdoor, 1.2 like 1.1 plus one file."""

    clean: Path
    backdoored: Path
    later: Path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    work = tmp_path_factory.mktemp("images")
    bad = build_example(work / "rootfs-1.1")
    clean = clone(bad, work / "rootfs-1.0")
    (clean / EXAMPLE_BACKDOOR.lstrip("/")).unlink()
    later = clone(bad, work / "rootfs-1.2")
    plant(later, "/etc/banner", "RX200 1.2\n")
    return Images(
        _squashfs(clean, work / "rx200-1.0.squashfs"),
        _squashfs(bad, work / "rx200-1.1.squashfs"),
        _squashfs(later, work / "rx200-1.2.squashfs"),
    )


class _Receiver(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.requests += 1
            refuse = self.server.requests <= self.server.fail_first
            if not refuse:
                self.server.received.append(json.loads(body))
        self.send_response(503 if refuse else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__(("127.0.0.1", 0), _Receiver)
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        self.fail_first = fail_first

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


@pytest.fixture
def webhook() -> Iterator[_ReceiverServer]:
    server = _ReceiverServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@dataclass
class Setup:
    tmp: Path
    vendor: keys.SigningKey
    log_key: keys.SigningKey
    log_dir: Path
    store: Path
    data: Path
    server: LogServer | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def release(self, image: Path, version: str, product: str = PRODUCT, log_dir: Path | None = None) -> None:
        entry = entry_bytes(make_release(image, self.vendor, product, version))
        if log_dir is None and self.server is not None:
            self.server.writer.add([entry])
        else:
            with LogWriter(log_dir or self.log_dir) as writer:
                writer.add([entry])

    def monitor(self, sessions: sessionmaker[Session], **kwargs: Any) -> Monitor:
        """A monitor of the example agreement on this log and image store, in this process."""
        return Monitor(
            sessions,
            log=self.url,
            log_key=self.log_key.verifier,
            agreement=load_agreement(EXAMPLE_AGREEMENT),
            images=self.store,
            **kwargs,
        )

    def args(self, *extra: str, log: str | None = None) -> list[str]:
        return [
            "monitor",
            "--log",
            log or self.url,
            "--log-key",
            str(self.files["log.vkey"]),
            "--agreement",
            str(EXAMPLE_AGREEMENT),
            "--images",
            str(self.store),
            "--data",
            str(self.data),
            "--once",
            *extra,
        ]


def _new_log(root: Path, key: keys.SigningKey, key_path: Path, vendor: keys.SigningKey) -> None:
    init_log(root, ORIGIN, key, key_path, [vendor.verifier])


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    vendor, log_key = keys.generate("acme.example"), keys.generate(ORIGIN)
    s = Setup(tmp_path, vendor, log_key, tmp_path / "log", tmp_path / "store", tmp_path / "data")
    s.store.mkdir()
    for name, text in (
        ("log.skey", str(log_key)),
        ("log.vkey", str(log_key.verifier)),
        ("vendor.vkey", str(vendor.verifier)),
    ):
        s.files[name] = tmp_path / name
        s.files[name].write_text(text + "\n")
    _new_log(s.log_dir, log_key, s.files["log.skey"], vendor)
    s.server = LogServer(s.log_dir, TOKEN)
    s.server.start()
    yield s
    if s.server is not None:
        s.server.close()


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = run(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def _alerts(stdout: str) -> list[dict[str, Any]]:
    """The alert documents ``nospy monitor`` printed (each as indented JSON after the summary line)."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while (start := stdout.find("\n{", pos)) != -1:
        doc, pos = decoder.raw_decode(stdout, start + 1)
        out.append(doc)
    return out


def test_monitor_end_to_end(
    setup: Setup, images: Images, webhook: _ReceiverServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """First release passes; the next one's image arrives late, then turns clauses from pass to fail
    (alert with the diff, on stdout, the exit status and the webhook); a restart keeps the state."""
    shutil.copy(images.clean, setup.store / sha256_file(images.clean))  # stored by content
    setup.release(images.clean, "1.0")
    code, out, err = _run(setup.args("--webhook", webhook.url), capsys)
    assert code == 0, err
    assert "1 new release(s), 1 checked, 0 missing image(s), 0 alert(s)" in out
    assert webhook.received == []

    # 1.1 is logged before its image reaches the store: reported, kept, and checked once it is there
    setup.release(images.backdoored, "1.1")
    code, out, err = _run(setup.args("--webhook", webhook.url), capsys)
    assert code == 0, err
    assert "1 new release(s), 0 checked, 1 missing image(s)" in out
    assert f"missing: {PRODUCT} 1.1 (log index 1)" in err
    shutil.copy(images.backdoored, setup.store / images.backdoored.name)  # stored by the manifest's name

    code, out, err = _run(setup.args("--webhook", webhook.url), capsys)  # a new process would see the same
    assert code == 1, err
    assert "0 new release(s), 1 checked, 0 missing image(s), 1 alert(s)" in out
    [alert] = _alerts(out)
    assert webhook.received == [alert]
    assert alert["kind"] == "new-failing-clause"
    assert alert["release"]["version"] == "1.1" and alert["release"]["log_index"] == 1
    assert alert["release"]["sha256"] == sha256_file(images.backdoored)
    assert alert["previous"]["version"] == "1.0"
    change = alert["change"]
    assert change["first_release"] is False
    transitions = {c["clause"]: (c["before"], c["after"]) for c in change["clauses"]}
    assert transitions["backdoors"] == ("pass", "fail")
    assert transitions["services"] == ("pass", "fail")
    assert set(change["new_failing"]) == {"backdoors", "services"}
    assert "software" not in transitions  # logged both times: passes both times
    planted = [f for f in change["new_findings"] if f["path"] == EXAMPLE_BACKDOOR]
    assert {f["rule"] for f in planted} >= {"service.shell-bind"}
    assert all(f["evidence"] or f["line"] for f in planted)
    assert change["firmware"]["files"]["added"] == [EXAMPLE_BACKDOOR]
    assert change["gone_findings"] == []

    # nothing new: nothing checked again, no alert; the state survived every run (here: in a new process)
    proc = subprocess.run(
        [sys.executable, "-m", "nospy", *setup.args("--webhook", webhook.url)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 new release(s), 0 checked, 0 missing image(s), 0 alert(s)" in proc.stdout

    # 1.2 still fails the same clauses: recorded, but no new alert
    shutil.copy(images.later, setup.store / sha256_file(images.later))
    setup.release(images.later, "1.2")
    code, out, _ = _run(setup.args("--webhook", webhook.url), capsys)
    assert code == 0
    assert "1 new release(s), 1 checked, 0 missing image(s), 0 alert(s)" in out
    assert len(webhook.received) == 1
    # the releases' files were analysed once, into the content cache in the monitor's own database
    with sqlite3.connect(setup.data / "nospy.db") as con:
        (analysed,) = con.execute("SELECT count(*) FROM analyses").fetchone()
    assert analysed > 0

    code, out, _ = _run(["history", PRODUCT, "--format", "json", "--data", str(setup.data)], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [(r["version"], r["log_index"], r["new_failing"]) for r in rows] == [
        ("1.0", 0, []),
        ("1.1", 1, ["backdoors", "services"]),
        ("1.2", 2, []),
    ]
    assert rows[0]["verdicts"]["backdoors"] == "pass" and rows[1]["verdicts"]["backdoors"] == "fail"
    assert rows[0]["sha256"] == sha256_file(images.clean)
    assert all(r["state"] == "done" and r["checked"] for r in rows)
    code, out, _ = _run(["history", PRODUCT, "--data", str(setup.data)], capsys)
    assert code == 0 and "1.1" in out and "backdoors, services" in out
    assert _run(["history", "no-such-product", "--data", str(setup.data)], capsys)[0] == 2

    # the web service shows the same history from the same database
    token = new_token(setup.data, "reader")
    auth = bearer(token)
    with running(setup.data) as web:
        # reads need a token: a page asks for a login, the API says 401
        assert httpx.get(f"{web.url}/api/history/{PRODUCT}", timeout=30).status_code == 401
        r = httpx.get(f"{web.url}/history", timeout=30)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/history"
        page = httpx.get(f"{web.url}/history", timeout=30, headers=auth)
        assert page.status_code == 200 and f'href="/history/{PRODUCT}"' in page.text
        page = httpx.get(f"{web.url}/history/{PRODUCT}", timeout=30, headers=auth)
        assert page.status_code == 200
        assert page.text.count('<span class="badge fail">fail</span>') >= 4
        assert '<b class="new-failing">backdoors, services</b>' in page.text
        second = rows[1]["id"]
        assert f"/history/releases/{second}/diff.json" in page.text
        diff = httpx.get(f"{web.url}/history/releases/{second}/diff.json", timeout=30, headers=auth).json()
        assert diff["new_failing"] == ["backdoors", "services"]
        report = httpx.get(f"{web.url}/history/releases/{second}/report.json", timeout=30, headers=auth).json()
        assert report["target"]["sha256"] == sha256_file(images.backdoored)
        html = httpx.get(f"{web.url}/history/releases/{second}/report.html", timeout=30, headers=auth)
        assert html.status_code == 200 and EXAMPLE_BACKDOOR in html.text
        api = httpx.get(f"{web.url}/api/history/{PRODUCT}", timeout=30, headers=auth).json()
        assert [r["version"] for r in api] == ["1.0", "1.1", "1.2"]
        assert httpx.get(f"{web.url}/history/nothing-here", timeout=30, headers=auth).status_code == 404
        assert httpx.get(f"{web.url}/history/releases/999/diff.json", timeout=30, headers=auth).status_code == 404


def test_history_of_a_release_not_checked_yet(setup: Setup, images: Images, capsys: pytest.CaptureFixture[str]) -> None:
    """A release whose image is not in the store yet is listed as missing; its report and diff are 409."""
    setup.release(images.clean, "1.0")
    code, out, err = _run(setup.args(), capsys)
    assert code == 0 and "1 missing image(s)" in out, err
    token = new_token(setup.data, "reader")
    with running(setup.data) as web:
        [row] = httpx.get(f"{web.url}/api/history/{PRODUCT}", timeout=30, headers=bearer(token)).json()
        assert row["state"] == "missing" and row["verdicts"] == {} and "not in the image store" in row["problem"]
        for part in ("report.json", "report.html", "diff.json"):
            r = httpx.get(f"{web.url}/history/releases/{row['id']}/{part}", timeout=30, headers=bearer(token))
            assert r.status_code == 409 and "not been checked yet" in r.text


def test_first_release_failing_alerts(setup: Setup, images: Images, capsys: pytest.CaptureFixture[str]) -> None:
    """A product's first release counts as 'not failing before': each failing clause alerts."""
    shutil.copy(images.backdoored, setup.store / sha256_file(images.backdoored))
    setup.release(images.backdoored, "1.1")
    setup.release(images.clean, "9.9", product="other-product")  # not the agreement's product: ignored
    code, out, _ = _run(setup.args(), capsys)
    assert code == 1
    [alert] = _alerts(out)
    assert alert["previous"] is None and alert["change"]["first_release"] is True
    assert {"backdoors", "services"} <= set(alert["change"]["new_failing"])
    assert alert["change"]["firmware"] is None
    assert _run(["history", "other-product", "--data", str(setup.data)], capsys)[0] == 2


def _release_of(setup: Setup, version: str, files: list[tuple[str, Path]], capsys: pytest.CaptureFixture[str]) -> None:
    """Log a release of ``files`` (name, image) made by ``nospy release`` (one subject per image, in order)."""
    skey = setup.tmp / "vendor.skey"
    skey.write_text(str(setup.vendor) + "\n")
    shipped = setup.tmp / "shipped"
    shipped.mkdir(exist_ok=True)
    paths = []
    for name, image in files:
        paths.append(shipped / name)
        shutil.copy(image, paths[-1])
    manifest = setup.tmp / f"{version}.release.json"
    args = ["release", *map(str, paths), "--key", str(skey), "--product", PRODUCT, "--version", version]
    assert _run([*args, "-o", str(manifest)], capsys)[0] == 0
    assert setup.server is not None
    setup.server.writer.add([entry_bytes(dsse.parse(manifest.read_bytes()))])


def test_every_image_of_a_release_is_checked(setup: Setup, images: Images, capsys: pytest.CaptureFixture[str]) -> None:
    """A release shipping two images (two subjects, as `nospy release A B` writes them) has both checked.
    A clause failing in an image is new when it failed in no image of the previous release, in whatever
    order the vendor lists them; the firmware diff is against the image of the same name, else place."""
    for image in (images.clean, images.backdoored):
        shutil.copy(image, setup.store / sha256_file(image))
    _release_of(setup, "1.0", [("rx200-1.0.squashfs", images.clean), ("boot.img", images.clean)], capsys)
    code, out, err = _run(setup.args(), capsys)
    assert code == 0 and "1 new release(s), 2 checked, 0 missing image(s), 0 alert(s)" in out, err
    assert f"new release {PRODUCT} 1.0 (log index 0, 2 images)" in err

    # the backdoored image listed first: still the one that alerts, diffed against the one of its name
    _release_of(setup, "1.1", [("boot.img", images.backdoored), ("rx200-1.1.squashfs", images.clean)], capsys)
    code, out, err = _run(setup.args(), capsys)
    assert code == 1, err
    assert "1 new release(s), 2 checked, 0 missing image(s), 1 alert(s)" in out
    assert f"ALERT {PRODUCT} 1.1 image 1 of 2, boot.img (log index 1)" in err
    [alert] = _alerts(out)
    assert alert["release"]["image"] == "boot.img" and alert["release"]["image_index"] == 0
    assert alert["release"]["sha256"] == sha256_file(images.backdoored)
    assert alert["previous"]["image"] == "boot.img" and alert["previous"]["version"] == "1.0"
    assert {"backdoors", "services"} <= set(alert["change"]["new_failing"])
    assert alert["change"]["firmware"]["files"]["added"] == [EXAMPLE_BACKDOOR]

    # the backdoor moved to the other image: the release fails as the last one did, with the same
    # findings; nothing is new (an order of images neither makes nor hides a new failure)
    _release_of(setup, "1.2", [("rx200-1.2.squashfs", images.backdoored), ("boot.img", images.clean)], capsys)
    code, out, err = _run(setup.args(), capsys)
    assert code == 0 and "1 new release(s), 2 checked, 0 missing image(s), 0 alert(s)" in out, err
    # a release whose second image is not in the store is not done, whatever its first image says
    _release_of(setup, "1.3", [("rx200-1.3.squashfs", images.clean), ("boot.img", images.later)], capsys)
    code, out, err = _run(setup.args(), capsys)
    assert code == 0 and "1 new release(s), 1 checked, 1 missing image(s)" in out, err

    code, out, _ = _run(["history", PRODUCT, "--format", "json", "--data", str(setup.data)], capsys)
    rows = json.loads(out)
    assert [(r["version"], r["image_index"], r["image"], r["state"], bool(r["new_failing"])) for r in rows] == [
        ("1.0", 0, "rx200-1.0.squashfs", "done", False),
        ("1.0", 1, "boot.img", "done", False),
        ("1.1", 0, "boot.img", "done", True),
        ("1.1", 1, "rx200-1.1.squashfs", "done", False),
        ("1.2", 0, "rx200-1.2.squashfs", "done", False),
        ("1.2", 1, "boot.img", "done", False),
        ("1.3", 0, "rx200-1.3.squashfs", "done", False),
        ("1.3", 1, "boot.img", "missing", False),
    ]
    ids = {(r["version"], r["image"]): r["id"] for r in rows}
    previous = {(r["version"], r["image"]): r["previous_id"] for r in rows}
    assert previous["1.1", "boot.img"] == ids["1.0", "boot.img"]  # the same name, in another place
    assert previous["1.1", "rx200-1.1.squashfs"] == ids["1.0", "boot.img"]  # no such name: the same place
    assert previous["1.2", "boot.img"] == ids["1.1", "boot.img"]
    assert previous["1.2", "rx200-1.2.squashfs"] == ids["1.1", "boot.img"]
    code, out, _ = _run(["history", PRODUCT, "--data", str(setup.data)], capsys)
    assert code == 0 and "1/2 boot.img" in out and "4 release(s)" in out
    with running(setup.data) as web:
        auth = bearer(new_token(setup.data, "reader"))
        page = httpx.get(f"{web.url}/history/{PRODUCT}", timeout=30, headers=auth).text
        assert "1/2 boot.img" in page and "2/2 rx200-1.1.squashfs" in page and "4 releases" in page
        [summary] = httpx.get(f"{web.url}/api/history", timeout=30, headers=auth).json()
    assert summary["releases"] == 4
    latest = summary["latest"]
    assert latest["version"] == "1.3" and latest["image"] == "rx200-1.3.squashfs, boot.img"
    assert latest["state"] == "missing" and latest["checked"] is None and "boot.img: " in latest["problem"]


def test_releases_recorded_with_their_first_image_only_are_read_again(
    setup: Setup, images: Images, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database from before every image of a release was recorded (migration 0006, where a downgrade
    leaves it): the upgrade has the monitor read the log again, and the images missing are checked."""
    for image in (images.clean, images.backdoored):
        shutil.copy(image, setup.store / sha256_file(image))
    _release_of(setup, "1.0", [("rx200-1.0.squashfs", images.clean), ("boot.img", images.backdoored)], capsys)
    _release_of(setup, "1.1", [("rx200-1.1.squashfs", images.clean)], capsys)
    code, out, err = _run(setup.args(), capsys)
    assert code == 1 and "2 new release(s), 3 checked, 0 missing image(s), 1 alert(s)" in out, err
    engine, _ = connect(f"sqlite:///{setup.data / 'nospy.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("nospy.server") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0006_rounds")
    engine.dispose()
    with sqlite3.connect(setup.data / "nospy.db") as db:
        counts = db.execute("SELECT count(*), max(next_index) FROM monitor_releases, monitor_watches").fetchone()
        assert counts == (2, 2)
        assert db.execute("SELECT count(*) FROM monitor_alerts").fetchone() == (0,)  # went with its release
    code, out, err = _run(setup.args(), capsys)
    assert code == 1, err
    assert "0 new release(s), 1 checked, 0 missing image(s), 1 alert(s)" in out
    assert "recorded 1 image(s) of releases read before, which were not recorded then" in err
    assert f"ALERT {PRODUCT} 1.0 image 2 of 2, boot.img (log index 0)" in err
    code, out, _ = _run(["history", PRODUCT, "--format", "json", "--data", str(setup.data)], capsys)
    assert [(r["image"], r["image_count"], r["state"]) for r in json.loads(out)] == [
        ("rx200-1.0.squashfs", 2, "done"),
        ("boot.img", 2, "done"),
        ("rx200-1.1.squashfs", 1, "done"),
    ]
    engine, sessions = connect(f"sqlite:///{setup.data / 'nospy.db'}")
    with sessions() as session:
        [summary] = history.products(session)
    engine.dispose()
    assert (summary.releases, summary.latest.version) == (2, "1.1")  # not 1.0, whose image was added last


def _one_watch(tmp_path: Path) -> tuple[Engine, sessionmaker[Session], int]:
    """A new database holding one log and one watch of it: its engine, sessions and the watch's id."""
    engine, sessions = connect(f"sqlite:///{tmp_path / 'one-watch.db'}")
    migrate(engine)
    with sessions.begin() as s:
        log = MonitorLog(origin=ORIGIN, key="k", location="l", size=3)
        s.add(log)
        s.flush()
        watch = MonitorWatch(log_id=log.id, agreement_id="a", agreement_sha256="b", next_index=3)
        s.add(watch)
        s.flush()
        return engine, sessions, watch.id


def test_pruning_keeps_what_a_diff_still_needs(setup: Setup, tmp_path: Path) -> None:
    """A pending image's diff reads an image of the release before it (by name, or else place), which
    may not be the latest checked image in its place: it is kept; images no release needs go."""
    engine, sessions, watch_id = _one_watch(tmp_path)
    v, x, y, z, w, q = (c * 64 for c in "abcdef")
    with sessions.begin() as s:
        for index, place, name, sha256, state in (
            (0, 0, "boot.img", v, "done"),
            (1, 0, "boot.img", x, "done"),
            (1, 1, "main.img", y, "done"),
            (2, 0, "main.img", z, "done"),  # the images reordered: boot.img is now second, not checked yet
            (2, 1, "boot.img", w, "pending"),
        ):
            s.add(MonitorRelease(watch_id=watch_id, log_index=index, product=PRODUCT, version=str(index),
                                 sha256=sha256, image_name=name, image_index=place, image_count=2, tree_size=3,
                                 state=state))  # fmt: skip
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for digest in (v, x, y, z, q):
        (downloads / digest).write_bytes(b"x")
        os.utime(downloads / digest, (time.time() - 3600, time.time() - 3600))
    said: list[str] = []
    monitor = Monitor(
        sessions,
        log=setup.url,
        log_key=setup.log_key.verifier,
        agreement=load_agreement(EXAMPLE_AGREEMENT),
        images="http://127.0.0.1:9/",
        downloads=downloads,
        say=said.append,
    )
    monitor._prune()
    assert sorted(p.name for p in downloads.iterdir()) == sorted([x, y, z])  # v and q: no release needs them
    assert said == ["deleted 2 fetched image(s) no release needs any more"]
    engine.dispose()


def test_the_latest_release_is_the_furthest_in_the_log(tmp_path: Path) -> None:
    """Releases recorded out of log order (a log read again finds one never recorded): the summary's
    latest release is the one furthest in the log, not the one recorded last."""
    engine, sessions, watch_id = _one_watch(tmp_path)
    with sessions.begin() as s:
        for index in (0, 2, 1):
            s.add(MonitorRelease(watch_id=watch_id, log_index=index, product=PRODUCT, version=f"1.{index}",
                                 sha256=str(index) * 64, image_name="fw.img", tree_size=3, state="done"))  # fmt: skip
            s.flush()
    with sessions() as s:
        [summary] = history.products(s)
    engine.dispose()
    assert (summary.releases, summary.latest.version) == (3, "1.2")


def test_a_release_summary_hides_no_image() -> None:
    """The latest release in a product summary: its images' worst verdicts and all their new failures."""
    base: dict[str, Any] = {
        "product": PRODUCT, "version": "2.0", "log_origin": ORIGIN, "log_index": 5, "sha256": "0" * 64,
        "agreement_id": "a", "problem": None, "found": datetime.now(UTC), "checked": datetime.now(UTC),
        "previous_id": None, "image_count": 2, "state": "done",
    }  # fmt: skip
    first = history.ReleaseRow(
        **base, id=1, image="a.img", image_index=0, verdicts={"backdoors": "fail", "keys": "pass"}, new_failing=[]
    )
    second = history.ReleaseRow(
        **base, id=2, image="b.img", image_index=1, verdicts={"backdoors": "fail", "keys": "fail"},
        new_failing=["keys"],
    )  # fmt: skip
    merged = history._together([first, second])
    assert merged.verdicts == {"backdoors": "fail", "keys": "fail"} and merged.new_failing == ["keys"]
    assert merged.image == "a.img, b.img" and merged.state == "done" and merged.id == 1


def test_forked_log_alerts_and_is_never_trusted_again(
    setup: Setup, images: Images, webhook: _ReceiverServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(images.clean, setup.store / sha256_file(images.clean))
    setup.release(images.clean, "1.0")
    setup.release(images.later, "1.2")
    assert _run(setup.args("--webhook", webhook.url), capsys)[0] == 0

    # the same origin and key, different history: entry 1 is another release
    fork_dir = setup.tmp / "fork"
    _new_log(fork_dir, setup.log_key, setup.files["log.skey"], setup.vendor)
    setup.release(images.clean, "1.0", log_dir=fork_dir)
    setup.release(images.backdoored, "1.1", log_dir=fork_dir)
    setup.release(images.later, "1.2", log_dir=fork_dir)
    fork = LogServer(fork_dir, TOKEN)
    fork.start()
    try:
        code, _, err = _run(setup.args("--webhook", webhook.url, log=fork.url), capsys)
    finally:
        fork.close()
    assert code == 1
    assert "not consistent" in err
    [alert] = webhook.received
    assert alert["kind"] == "log-fork"
    # the evidence: two checkpoints signed by the log key that cannot both hold
    assert alert["previous_checkpoint"].split("\n")[1] == "2"
    assert alert["checkpoint"].split("\n")[1] == "3"

    # for good: the original log, still consistent with what was seen, is not trusted either
    setup.release(images.backdoored, "1.1")
    code, _, err = _run(setup.args("--webhook", webhook.url), capsys)
    assert code == 1 and "not trusted" in err
    assert len(webhook.received) == 1  # alerted once
    assert _run(["history", PRODUCT, "--format", "json", "--data", str(setup.data)], capsys)[0] == 0


def test_an_older_checkpoint_is_behind_not_a_fork(setup: Setup, images: Images) -> None:
    """A checkpoint smaller than the one seen is proved contained in it (a cache or mirror behind the
    log), or proved not to be (a fork), or, when the log no longer serves the tiles to tell, an error."""
    setup.release(images.clean, "1.0")
    src = open_source(setup.log_dir)
    older = follow.latest(src, setup.log_key.verifier)
    setup.release(images.backdoored, "1.1")
    seen = (setup.log_dir / "checkpoint").read_text()
    st = follow.step(src, setup.log_key.verifier, older, seen)
    assert st.behind and st.previous_size == 2 and st.signed.checkpoint.size == 1

    # the same origin and key, another first entry: the log's own tiles prove the two inconsistent
    other = setup.tmp / "other"
    _new_log(other, setup.log_key, setup.files["log.skey"], setup.vendor)
    setup.release(images.later, "1.0", log_dir=other)
    rewritten = follow.latest(open_source(other), setup.log_key.verifier)
    with pytest.raises(follow.ForkError, match="not consistent"):
        follow.step(src, setup.log_key.verifier, rewritten, seen)
    # the rewritten log alone cannot prove it either way: it no longer serves the tree of size 2
    with pytest.raises(InputError, match="cannot prove the two consistent"):
        follow.step(open_source(other), setup.log_key.verifier, rewritten, seen)
    # the log grown from what was seen is consistent with it
    follow.step(src, setup.log_key.verifier, follow.latest(src, setup.log_key.verifier), seen)


def test_monitor_reading_an_older_checkpoint_goes_on(
    setup: Setup, images: Images, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log (a folder) serves an older checkpoint for a while: no alert, no fork, nothing lost."""
    assert setup.server is not None
    setup.server.close()
    setup.server = None
    for image in (images.clean, images.backdoored, images.later):
        shutil.copy(image, setup.store / sha256_file(image))
    setup.release(images.clean, "1.0")
    older = (setup.log_dir / "checkpoint").read_text()
    setup.release(images.backdoored, "1.1")
    args = setup.args(log=str(setup.log_dir))
    code, out, err = _run(args, capsys)
    assert code == 1 and "2 new release(s), 2 checked" in out, err
    newest = (setup.log_dir / "checkpoint").read_text()
    (setup.log_dir / "checkpoint").write_text(older)
    code, out, err = _run(args, capsys)
    assert code == 0, err
    assert "older than the size 2 seen before and consistent with it: nothing new" in err
    assert "size 2, 0 new release(s), 0 checked, 0 missing image(s), 0 alert(s)" in out
    with sqlite3.connect(setup.data / "nospy.db") as db:  # the checkpoint kept is still the newest seen
        assert db.execute("SELECT size, checkpoint FROM monitor_logs").fetchall() == [(2, newest)]
    (setup.log_dir / "checkpoint").write_text(newest)
    setup.release(images.later, "1.2")
    code, out, err = _run(args, capsys)
    assert code == 0 and "1 new release(s), 1 checked" in out, err


def test_webhook_retries_and_outbox(setup: Setup, images: Images, tmp_path: Path) -> None:
    """A webhook that refuses once gets the alert on the retry; one that is down keeps it for the next round."""
    engine, sessions = connect(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    shutil.copy(images.backdoored, setup.store / sha256_file(images.backdoored))
    setup.release(images.backdoored, "1.1")
    down = _ReceiverServer()
    dead_url = down.url
    down.server_close()  # nothing listens there now

    def monitor(url: str) -> Monitor:
        return setup.monitor(sessions, vendor_keys=[setup.vendor.verifier], webhook=url)

    first = monitor(dead_url).run_round()
    assert len(first.alerts) == 1 and len(first.undelivered) == 1

    flaky = _ReceiverServer(fail_first=1)
    thread = threading.Thread(target=flaky.serve_forever, daemon=True)
    thread.start()
    try:
        second = monitor(flaky.url).run_round()
    finally:
        flaky.shutdown()
        flaky.server_close()
    assert second.alerts == [] and second.undelivered == []
    assert flaky.requests == 2  # refused once, then taken
    assert flaky.received == first.alerts
    engine.dispose()


def test_a_log_rewritten_to_fewer_entries_alerts_once(
    setup: Setup, images: Images, webhook: _ReceiverServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log that now shows a smaller tree and not the tiles of the one seen cannot prove it is only
    behind: an alert with both checkpoints (once per checkpoint served), no fork declared."""
    assert setup.server is not None
    setup.server.close()
    setup.server = None
    shutil.copy(images.clean, setup.store / sha256_file(images.clean))
    setup.release(images.clean, "1.0")
    setup.release(images.clean, "1.0.1")
    args = setup.args("--webhook", webhook.url, log=str(setup.log_dir))
    code, out, err = _run(args, capsys)
    assert code == 0 and "2 new release(s), 2 checked" in out, err
    shutil.rmtree(setup.log_dir)
    _new_log(setup.log_dir, setup.log_key, setup.files["log.skey"], setup.vendor)
    setup.release(images.later, "1.2")
    code, out, err = _run(args, capsys)
    assert code == 1, err
    assert "cannot prove the two consistent" in err and "not trusted" not in err
    assert "size 2, 0 new release(s)" in out
    [alert] = webhook.received
    assert alert["kind"] == "log-behind-unproven"
    assert alert["previous_checkpoint"].split("\n")[1] == "2"
    assert alert["checkpoint"].split("\n")[1] == "1"
    code, out, err = _run(args, capsys)  # the same checkpoint again: said, not alerted again
    assert code == 0 and "cannot prove the two consistent" in err, err
    # nor when a witness has cosigned it meanwhile: the same tree
    note = (setup.log_dir / "checkpoint").read_text()
    body = note.split("\n\n", 1)[0] + "\n"
    (setup.log_dir / "checkpoint").write_text(note + cosign(body, keys.generate("witness.example")))
    code, out, err = _run(args, capsys)
    assert code == 0 and "cannot prove the two consistent" in err, err
    assert len(webhook.received) == 1


def test_a_round_is_left_to_the_monitor_already_in_one(
    setup: Setup,
    images: Images,
    webhook: _ReceiverServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An overlapping ``--once`` run on the same log and database skips its round (exit 0): the release
    is checked once and its alert sent once, by the monitor that was first. A round that has shown no
    progress for longer than ``--stale-after`` is said to be stuck instead (exit 2)."""
    shutil.copy(images.backdoored, setup.store / sha256_file(images.backdoored))
    setup.release(images.backdoored, "1.1")
    setup.data.mkdir()
    engine, sessions = connect(f"sqlite:///{(setup.data / 'nospy.db').resolve()}")
    migrate(engine)
    db = sqlite3.connect(setup.data / "nospy.db")
    lock = f"nospy-monitor {setup.log_key.verifier.label}"
    long_ago = "2000-01-01 00:00:00.000000"
    with db:  # the row of a monitor that was killed in a round: taken over by the next round
        db.execute(
            "INSERT INTO monitor_rounds VALUES (?, 'dead', 'process 1 on gone', ?, ?)", (lock, long_ago, long_ago)
        )
    monkeypatch.setattr(monitor_run, "_PROGRESS_EVERY", 0.0)  # every step renews the round's sign of life
    monkeypatch.setattr(monitor_run, "_TAKEOVER_GRACE", 0.0)
    checking, go_on = threading.Event(), threading.Event()

    def say(text: str) -> None:
        if text.startswith("checking"):  # inside the round, with the release about to be checked
            checking.set()
            assert go_on.wait(120)

    first = setup.monitor(sessions, webhook=webhook.url, say=say)
    results = []
    thread = threading.Thread(target=lambda: results.append(first.run_round()))
    thread.start()
    try:
        assert checking.wait(120)
        code, out, err = _run(setup.args("--webhook", webhook.url), capsys)
        assert code == 0, err
        assert "round skipped: another monitor is in a round on the log of key" in err
        assert out == ""
        # the round says who holds it, and renews its sign of life as it goes
        [(token, holder, started, progress)] = db.execute(
            "SELECT token, holder, started, progress FROM monitor_rounds"
        ).fetchall()
        assert token != "dead" and holder.startswith(f"process {os.getpid()} on ") and progress > started
        # once it has shown no progress for longer than --stale-after, an overlapping run says it may
        # be hung (exit 2) instead of skipping without a word
        with db:
            db.execute("UPDATE monitor_rounds SET progress = ?", (long_ago,))
        code, out, err = _run(setup.args("--webhook", webhook.url), capsys)
        assert code == 2 and out == "", err
        assert "round skipped" in err and f"held by process {os.getpid()} on " in err and "may be hung" in err
        recent = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S.%f")
        with db:
            db.execute("UPDATE monitor_rounds SET progress = ?", (recent,))
        code, _, err = _run(setup.args("--webhook", webhook.url, "--stale-after", "86400"), capsys)
        assert code == 0 and "round skipped" in err and "hung" not in err, err
        code, _, err = _run(setup.args("--webhook", webhook.url), capsys)  # the default: an hour
        assert code == 2 and "may be hung" in err, err
        code, _, err = _run(setup.args("--stale-after", "nan"), capsys)
        assert code == 2 and "stale after nan s" in err, err
    finally:
        go_on.set()
        thread.join(240)
    assert db.execute("SELECT count(*) FROM monitor_rounds").fetchone() == (0,)  # gone with the round
    # a stale row seen in the moment between another monitor taking the lock and taking the row
    # over (read again after the grace) is not said to be stuck
    with db:
        db.execute(
            "INSERT INTO monitor_rounds VALUES (?, 'dead', 'process 1 on gone', ?, ?)", (lock, long_ago, long_ago)
        )
    other = setup.monitor(sessions, webhook=webhook.url)
    assert other._stuck() is not None

    def taken_over(_: float) -> None:
        with db:
            db.execute("UPDATE monitor_rounds SET token = 'new', progress = ?", (recent,))

    monkeypatch.setattr(time, "sleep", taken_over)  # the grace the monitor waits is when the row is taken over
    assert other._stuck() is None
    monkeypatch.undo()
    with db:
        db.execute("DELETE FROM monitor_rounds")
    db.close()
    [result] = results
    assert result.checked == [f"{PRODUCT} 1.1 (log index 0)"] and len(result.alerts) == 1
    assert len(webhook.received) == 1
    # once the first round is over, the next one runs: nothing is left to check or send
    code, out, err = _run(setup.args("--webhook", webhook.url), capsys)
    assert code == 0 and "0 new release(s), 0 checked" in out, err
    assert len(webhook.received) == 1
    engine.dispose()


def test_untrusted_vendor_releases_are_not_checked(
    setup: Setup, images: Images, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(images.clean, setup.store / sha256_file(images.clean))
    setup.release(images.clean, "1.0")
    other = tmp_path / "other.vkey"
    other.write_text(str(keys.generate("someone.example").verifier) + "\n")
    code, out, err = _run(setup.args("--trust", str(other)), capsys)
    assert code == 0
    assert "0 new release(s)" in out and "not signed by a trusted vendor key" in err
    code, out, _ = _run(setup.args("--trust", str(setup.files["vendor.vkey"]), "--data", str(tmp_path / "d2")), capsys)
    assert code == 0 and "1 new release(s), 1 checked" in out


def test_bad_input_is_exit_2(setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(setup.args(log=str(tmp_path / "no-log")), capsys)[0] == 2
    assert _run(setup.args("--webhook", "file:///etc/passwd"), capsys)[0] == 2
    args = setup.args()
    args[args.index("--images") + 1] = str(tmp_path / "missing-store")
    assert _run(args, capsys)[0] == 2
    wrong = tmp_path / "wrong.vkey"
    wrong.write_text(str(keys.generate(ORIGIN).verifier) + "\n")
    args = setup.args()
    args[args.index("--log-key") + 1] = str(wrong)
    assert _run(args, capsys)[0] == 1  # the checkpoint does not verify under this key


def test_image_lookup_checks_the_digest(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(b"firmware")
    digest = sha256_file(image)
    assert find_image(tmp_path, digest, "fw.bin").path == image
    image.write_bytes(b"another firmware")
    found = find_image(tmp_path, digest, "fw.bin")
    assert found.path is None and found.problem is not None and "fw.bin has sha256" in found.problem
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_bytes(b"firmware")
    assert find_image(tmp_path, digest, "sub/x").path is None  # a name from the log never picks a folder
    assert find_image(tmp_path, digest, "../fw.bin").path is None
    (tmp_path / digest[:2]).mkdir()
    (tmp_path / digest[:2] / digest).write_bytes(b"firmware")
    assert find_image(tmp_path, digest, "whatever").path == tmp_path / digest[:2] / digest


def test_monitor_loop_stops_when_its_log_forks(setup: Setup, images: Images, webhook: _ReceiverServer) -> None:
    """Without --once: rounds every --interval seconds, until the log (a folder here) is rewritten."""
    shutil.copy(images.clean, setup.store / sha256_file(images.clean))
    assert setup.server is not None
    setup.server.close()
    setup.server = None
    setup.release(images.clean, "1.0")
    args = setup.args("--webhook", webhook.url, "--interval", "1", log=str(setup.log_dir))
    args.remove("--once")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nospy", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = subprocess.run(
                [sys.executable, "-m", "nospy", "history", PRODUCT, "--format", "json", "--data", str(setup.data)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0 and json.loads(done.stdout)[0]["state"] == "done":
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        else:
            raise AssertionError("the monitor did not check the first release")
        # the log is replaced by another history under the same origin and key
        shutil.rmtree(setup.log_dir)
        _new_log(setup.log_dir, setup.log_key, setup.files["log.skey"], setup.vendor)
        setup.release(images.later, "1.2")
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err
    assert "log not trusted" in err
    assert [a["kind"] for a in webhook.received] == ["log-fork"]


class _Files(SimpleHTTPRequestHandler):
    """A web image store: the files of a folder; ``/broken/...`` answers 500."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        route, _, rest = self.path.lstrip("/").partition("/")
        if route == "broken":
            self.send_error(500)
        elif route in {"to-ftp", "to-here"}:  # a redirect to another scheme, or to the same store
            self.send_response(302)
            self.send_header("Location", f"ftp://127.0.0.1/{rest}" if route == "to-ftp" else f"/{rest}")
            self.end_headers()
        elif route in {"unsized", "slow", "huge"}:
            self.send_response(200)
            if route == "huge":
                self.send_header("Content-Length", str(1 << 40))
            self.end_headers()
            data = (Path(self.directory) / rest).read_bytes()
            step = 1 if route == "slow" else 1 << 16
            for i in range(0, len(data), step):
                try:
                    self.wfile.write(data[i : i + step])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    break
                if route == "slow":
                    time.sleep(0.05)
        else:
            super().do_GET()


@contextlib.contextmanager
def _web_store(folder: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_images_fetched_from_a_web_store(setup: Setup, images: Images, capsys: pytest.CaptureFixture[str]) -> None:
    """``--images URL``: each release's image is fetched (by digest, in the blob layout, or by name),
    kept in the data folder once its digest matches, and read from there afterwards; a file that does
    not match leaves the release missing until the right one is served."""
    web = setup.tmp / "web"
    web.mkdir()
    clean, bad, later = (sha256_file(p) for p in (images.clean, images.backdoored, images.later))
    shutil.copy(images.clean, web / clean)
    (web / bad[:2]).mkdir()
    shutil.copy(images.backdoored, web / bad[:2] / bad)
    (web / images.later.name).write_bytes(images.clean.read_bytes())  # not the 1.2 image
    for image, version in ((images.clean, "1.0"), (images.backdoored, "1.1"), (images.later, "1.2")):
        setup.release(image, version)
    kept = setup.data / "images"
    with _web_store(web) as url:
        args = setup.args()
        args[args.index("--images") + 1] = url
        code, out, err = _run(args, capsys)
        assert code == 1, err  # 1.1 fails the no-backdoor clause that 1.0 passed
        assert "3 new release(s), 2 checked, 1 missing image(s), 1 alert(s)" in out, out
        assert f"{url}{images.later.name} has sha256 {clean}" in err
        # both kept (no partial download left): images fetched or used within 10 minutes are not pruned
        assert sorted(p.name for p in kept.iterdir()) == sorted([clean, bad])
        for path in kept.iterdir():
            os.utime(path, (time.time() - 3600, time.time() - 3600))
        (web / images.later.name).write_bytes(images.later.read_bytes())
        shutil.rmtree(web / bad[:2])  # 1.2 is diffed against 1.1, whose image is now read from the data folder
        code, out, err = _run(args, capsys)
        assert code == 0 and "0 new release(s), 1 checked, 0 missing" in out, err
        # 1.0's image is gone: only the latest checked release's is needed (the next one is diffed
        # against it); 1.1's, read in this round, stays until it has not been used for a while
        assert "deleted 1 fetched image(s) no release needs any more" in err
        assert sorted(p.name for p in kept.iterdir()) == sorted([bad, later]) and sha256_file(kept / later) == later
    with sqlite3.connect(setup.data / "nospy.db") as db:
        [(diff,)] = db.execute("SELECT diff_json FROM monitor_releases WHERE version = '1.2'").fetchall()
    change = json.loads(diff)
    assert change["firmware_problem"] is None and change["firmware"] is not None
    assert "/etc/banner" in change["firmware"]["files"]["added"], change["firmware"]["files"]


def test_web_store_limits_and_errors(tmp_path: Path) -> None:
    web = tmp_path / "web"
    web.mkdir()
    (web / "fw.bin").write_bytes(b"firmware" * 1000)
    digest = sha256_file(web / "fw.bin")
    downloads = tmp_path / "dl"
    with _web_store(web) as url:
        small = HttpStore(url, downloads, max_bytes=100)
        found = small.find(digest, "fw.bin")
        assert found.path is None and found.problem is not None and "larger than 100 bytes" in found.problem
        found = HttpStore(url + "broken", downloads).find(digest, "fw.bin")
        assert found.problem is not None and found.problem.count("HTTP 500") == 3
        found = HttpStore(url, downloads).find(digest, "../fw.bin")  # a name from the log picks no path
        assert found.path is None and found.problem is not None and "../" not in found.problem
        assert list(downloads.iterdir()) == []
        assert HttpStore(url, downloads).find(digest, "fw.bin").path == downloads / digest
    assert HttpStore("http://127.0.0.1:9/", downloads).find(digest, "fw.bin").path == downloads / digest  # kept
    (downloads / digest).write_bytes(b"corrupted")  # a kept file is hashed again before use: fetched anew
    with _web_store(web) as url:
        calls: list[None] = []
        found = HttpStore(url + "to-here", downloads, progress=lambda: calls.append(None)).find(digest, "fw.bin")
        assert found.path == downloads / digest and sha256_file(downloads / digest) == digest and calls
        (downloads / digest).unlink()
        for route, max_seconds, problem in (
            ("unsized", 60.0, "larger than 100 bytes"),  # no Content-Length: counted as it comes
            ("huge", 60.0, f"larger than 100 bytes ({1 << 40})"),  # refused before any byte is read
            ("slow", 0.3, "not fetched within 0.3 s"),  # a server that trickles: the download's own deadline
            ("to-ftp", 60.0, "refused (http(s) only"),
        ):
            store = HttpStore(
                url + route, downloads, max_bytes=100 if route != "slow" else 1 << 20, max_seconds=max_seconds
            )
            found = store.find(digest, "fw.bin")
            assert found.path is None and found.problem is not None and problem in found.problem, (route, found)
    assert list(downloads.iterdir()) == []
    # a partial download left by a killed monitor is deleted by the next store, one being written is not
    dead, live = downloads / ".part-dead", downloads / ".part-live"
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    os.utime(dead, (time.time() - 3600, time.time() - 3600))
    HttpStore("http://127.0.0.1:9/", downloads)
    assert sorted(p.name for p in downloads.iterdir()) == [".part-live"]
    # pruning deletes fetched images not kept, and nothing else (a download in progress, other files)
    for name in ("a" * 64, "b" * 64, "c" * 64, "notes.txt"):
        (downloads / name).write_bytes(b"x")
        if name != "c" * 64:  # c was fetched (or used) just now
            os.utime(downloads / name, (time.time() - 3600, time.time() - 3600))
    assert HttpStore("http://127.0.0.1:9/", downloads).prune({"b" * 64}) == ["a" * 64]
    assert sorted(p.name for p in downloads.iterdir()) == [".part-live", "b" * 64, "c" * 64, "notes.txt"]
    found = HttpStore("http://127.0.0.1:9/", tmp_path / "dl2").find(digest, "fw.bin")
    assert found.path is None and found.problem is not None and "Connection refused" in found.problem
    with pytest.raises(InputError, match="not an http"):
        HttpStore("ftp://example/", downloads)
