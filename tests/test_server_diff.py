"""Image diffs in `nospy serve`: two checks' firmware images compared (nospy.firmware.diff) in a
worker process, through the API and the pages, against a real server and real tar images."""

from __future__ import annotations

import html
from collections.abc import Iterator

import httpx
import pytest

from serverlib import (
    EXAMPLE_AGREEMENT,
    RX200_BASE,
    RX200_NEXT,
    Server,
    bearer,
    new_token,
    running,
    submit,
    wait_finished,
)
from serverlib import firmware_tar as _tar


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data = tmp_path_factory.mktemp("diff")
    token = new_token(data, "diff-tests")
    with running(data) as server:
        yield server, token


def _check(server: Server, token: str, image: tuple[str, bytes] | None) -> str:
    files = [("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))]
    if image is not None:
        files.append(("firmware", image))
    r = submit(server.url, token, files)
    assert r.status_code == 202, r.text
    check_id: str = r.json()["id"]
    return check_id


def test_diff_of_a_check_and_its_predecessor(live: tuple[Server, str]) -> None:
    server, token = live
    auth = bearer(token)
    old = _check(server, token, ("rx200-3.2.0.tar", _tar(RX200_BASE)))
    plain = _check(server, token, None)  # no firmware: skipped when looking for the one before
    new = _check(server, token, ("rx200-3.2.1.tar", _tar(RX200_NEXT)))

    # no old check named: the newest earlier check with firmware
    r = httpx.post(f"{server.url}/api/diffs", json={"new_check": new}, headers=auth, timeout=30)
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["old"]["check"] == old and queued["new"]["check"] == new
    assert queued["old"]["name"] == "rx200-3.2.0.tar" and queued["state"] in ("queued", "running", "done")
    diff = wait_finished(server.url, queued["id"], token, timeout=600, what="diffs")
    assert diff["state"] == "done", diff
    result = diff["result"]
    assert result["old"] == "rx200-3.2.0.tar" and result["new"] == "rx200-3.2.1.tar"
    assert result["files"] == {
        "added": ["/etc/init.d/S99diag"],
        "removed": [],
        "changed": ["/etc/inittab", "/etc/version"],
    }
    assert result["inventory"]["services"]["added"] == ["telnetd tcp 2323"]
    assert result["inventory"]["accounts"] == {"added": [], "removed": [], "changed": []}
    added = {(f["rule"], f["path"]) for f in result["findings_added"]}
    assert ("service.shell-bind", "/etc/init.d/S99diag") in added
    assert ("console.unauthenticated", "/etc/inittab") in added
    assert result["findings_removed"] == []
    assert all(f["evidence"] for f in result["findings_added"])
    assert str(server.data) not in r.text + str(result)
    # findings and reports name the images as uploaded, never by the server's stored paths
    assert all(f["location"].startswith("rx200-3.2.1.tar!") for f in result["findings_added"])
    check = wait_finished(server.url, new, token)
    report = httpx.get(f"{server.url}{check['report']}", headers=auth, timeout=30)
    assert report.status_code == 200 and str(server.data) not in report.text
    firmware = report.json()["sources"][0]
    assert firmware["path"] == "rx200-3.2.1.tar" and firmware["sha256"] in report.text
    located = [f["location"] for f in report.json()["findings"]]
    assert "rx200-3.2.1.tar!tar@0x0!/etc/init.d/S99diag" in located, located

    # asked again (here with both checks named): the same diff, not a second run
    again = httpx.post(f"{server.url}/api/diffs", json={"new_check": new, "old_check": old}, headers=auth)
    assert again.status_code == 202 and again.json()["id"] == diff["id"] and again.json()["state"] == "done"
    # the other way round is another diff
    back = httpx.post(f"{server.url}/api/diffs", json={"new_check": old, "old_check": new}, headers=auth)
    assert back.status_code == 202 and back.json()["id"] != diff["id"]

    page = httpx.get(f"{server.url}/diffs/{diff['id']}", headers=auth, timeout=30)
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert 'id="findings-added"' in text and "service.shell-bind" in text and "console.unauthenticated" in text
    assert "/etc/init.d/S99diag" in text and "telnetd tcp 2323" in text and "rx200-3.2.0.tar" in text
    assert 'http-equiv="refresh"' not in text  # finished: the page no longer reloads itself

    # a check without firmware, or nothing before it, cannot be compared
    r = httpx.post(f"{server.url}/api/diffs", json={"new_check": plain, "old_check": old}, headers=auth)
    assert r.status_code == 404 and "no firmware evidence" in r.json()["detail"]
    r = httpx.post(f"{server.url}/api/diffs", json={"new_check": old}, headers=auth)
    assert r.status_code == 404 and "no check with firmware evidence before" in r.json()["detail"]
    r = httpx.post(f"{server.url}/api/diffs", json={"new_check": new, "new_image": "0" * 64}, headers=auth)
    assert r.status_code == 404
    # reading and asking need a token
    assert httpx.get(f"{server.url}/api/diffs/{diff['id']}").status_code == 401
    assert httpx.post(f"{server.url}/api/diffs", json={"new_check": new}).status_code == 401


def test_diff_from_the_check_page_form(live: tuple[Server, str]) -> None:
    server, token = live
    first = _check(server, token, ("a.tar", _tar(RX200_BASE)))
    second = _check(server, token, ("b.tar", _tar({**RX200_BASE, "etc/version": b"3.3\n"})))
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert browser.post("/login", data={"token": token}).status_code == 303
        page = browser.get(f"/checks/{second}").text
        assert 'id="diff-form"' in page and f'<option value="{first}" selected>' in page
        form = {"new_check": second, "old_check": first}
        r = browser.post("/diffs", data=form, headers={"Origin": server.url})
        assert r.status_code == 303 and r.headers["location"].startswith("/diffs/")
        diff_id = r.headers["location"].rsplit("/", 1)[1]
        # from another site's page the cookie does not count
        assert (
            browser.post("/diffs", data=form, headers={"Origin": "http://evil.example"}).headers["location"] == "/login"
        )
    diff = wait_finished(server.url, diff_id, token, timeout=600, what="diffs")
    assert diff["state"] == "done" and diff["result"]["files"]["changed"] == ["/etc/version"]
    assert diff["result"]["findings_added"] == [] and diff["result"]["findings_removed"] == []
