"""The web pages in a real browser: Debian's chromium driven by playwright (never `playwright install`).

Log in with a token, upload an agreement, watch the check's progress update live, open the verdict
page and the full report; compare two releases' firmware images from the check page; and keep
screenshots of each.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverlib import EXAMPLE_AGREEMENT, RX200_BASE, RX200_NEXT, firmware_tar, new_token, running, submit, wait_finished

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (debian-packages.txt lists it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    # NOSPY_SCREENSHOTS keeps them somewhere to look at after the run
    folder = Path(os.environ.get("NOSPY_SCREENSHOTS", tmp_path / "shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_upload_watch_progress_and_read_the_verdicts(browser: object, tmp_path: Path, shots: Path) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    data = tmp_path / "serve"
    token = new_token(data, "browser")
    with running(data) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # reading needs a login: the list of checks sends the browser to the login form and back
        page.goto(server.url + "/")
        assert page.url == f"{server.url}/login?next=/"
        page.fill("#token", token)
        page.click("#login")
        expect(page.locator("nav")).to_contain_text("signed in as browser")
        assert page.url == f"{server.url}/"
        cookie = next(c for c in page.context.cookies() if c["name"] == "nospy_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        # checks already in the queue keep ours waiting long enough to see it progress
        queue = [("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))]
        for _ in range(80):
            assert submit(server.url, token, queue).status_code == 202

        page.click("#nav-new")
        page.set_input_files("#agreement", str(EXAMPLE_AGREEMENT))
        page.click("#start")
        page.wait_for_url("**/checks/*")
        live = page.locator("#live")
        assert live.get_attribute("data-finished") == "no"  # we arrived before it finished
        # the state as the server rendered it (the page's script may have moved #state on already)
        assert live.get_attribute("data-state") in ("queued", "running")
        page.screenshot(path=str(shots / "progress.png"), full_page=True)

        # no reload from the test: the page's script follows the check to the end
        expect(page.locator("#state")).to_have_text("done", timeout=60_000)
        expect(page.locator("#verdicts")).to_be_visible(timeout=10_000)
        expect(page.locator("#verdict-backdoors")).to_contain_text("not-checked")
        expect(page.locator("#events")).to_contain_text("done: 8 not-checked")
        page.screenshot(path=str(shots / "verdicts.png"), full_page=True)

        page.click("#full-report")
        expect(page.locator("#overall")).to_have_text("0 pass, 8 not checked")
        expect(page.locator("#chart-severity")).to_be_visible()
        page.screenshot(path=str(shots / "report.png"), full_page=True)

        page.goto(server.url + "/")
        expect(page.locator("#checks tbody tr")).to_have_count(81)
        page.click("nav button")  # log out: the checks are out of reach again
        page.goto(server.url + "/")
        assert "/login" in page.url
        page.close()
    assert (shots / "verdicts.png").stat().st_size > 10_000


def test_compare_two_releases_from_the_check_page(browser: object, tmp_path: Path, shots: Path) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    data = tmp_path / "serve"
    token = new_token(data, "browser")
    agreement = ("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))
    with running(data) as server:
        ids = []
        for name, files in (("rx200-3.2.0.tar", RX200_BASE), ("rx200-3.2.1.tar", RX200_NEXT)):
            r = submit(server.url, token, [agreement, ("firmware", (name, firmware_tar(files)))])
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        for check_id in ids:
            assert wait_finished(server.url, check_id, token, timeout=300)["state"] == "done"

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/login?next=/checks/{ids[1]}")
        page.fill("#token", token)
        page.click("#login")
        page.wait_for_url(f"**/checks/{ids[1]}")
        # the form offers the check before this one, already chosen
        expect(page.locator("#old_check option:checked")).to_contain_text("rx200-3.2.0.tar")
        expect(page.locator("#old_check option:checked")).to_contain_text("(the one before)")
        page.click("#diff-start")
        page.wait_for_url("**/diffs/*")
        # the page reloads itself until the diff is done
        expect(page.locator("#state")).to_have_text("done", timeout=300_000)
        expect(page.locator("#images")).to_contain_text("rx200-3.2.0.tar")
        expect(page.locator("#images")).to_contain_text("rx200-3.2.1.tar")
        expect(page.locator("#findings-added")).to_contain_text("service.shell-bind")
        expect(page.locator("#findings-added")).to_contain_text("rx200-3.2.1.tar!")
        expect(page.locator("#inventory-services")).to_contain_text("telnetd tcp 2323")
        expect(page.locator("#files-summary")).to_have_text("1 added, 0 removed, 2 changed")
        page.screenshot(path=str(shots / "diff.png"), full_page=True)
        page.close()
    assert (shots / "diff.png").stat().st_size > 10_000
