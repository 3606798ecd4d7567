"""The web service's API and pages over real HTTP: a `nospy serve` process with its SQLite database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nospy import agreement as agr
from nospy.keys import generate
from serverlib import EXAMPLE_AGREEMENT, Server, bearer, new_token, running, submit, wait_finished

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("serve")
    with running(data, {"NOSPY_MAX_UPLOAD_BYTES": str(LIMIT), "NOSPY_MAX_FILES": "4"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return new_token(server.data, "api-tests")


def get(token: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, headers=bearer(token), timeout=30, **kwargs)


def _agreement() -> list[tuple[str, tuple[str, bytes]]]:
    return [("agreement", ("agreement.yaml", EXAMPLE_AGREEMENT.read_bytes()))]


def test_check_runs_and_every_report_format_is_served(server: Server, token: str) -> None:
    r = submit(server.url, token, _agreement())
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["state"] == "queued"
    check = wait_finished(server.url, created["id"], token)
    assert check["state"] == "done" and check["agreement_id"] == "acme-rx200-in-2026"
    assert check["outcome"] == "not-checked" and check["summary"] == "8 not-checked"
    assert [v["status"] for v in check["verdicts"]] == ["not-checked"] * 8
    assert [e["text"] for e in check["events"][:2]] == ["queued by api-tests", "started"]
    assert check["events"][-1]["text"] == "done: 8 not-checked"
    assert [f["role"] for f in check["files"]] == ["agreement"]
    media = {
        "json": "application/json",
        "sarif": "application/sarif+json",
        "oscal": "application/json",
        "html": "text/html; charset=utf-8",
        "table": "text/plain; charset=utf-8",
    }
    for fmt, content_type in media.items():
        resp = get(token, f"{server.url}{check['report']}", params={"format": fmt})
        assert resp.status_code == 200 and resp.headers["content-type"] == content_type
    report = get(token, f"{server.url}{check['report']}").json()
    assert report["agreement"]["id"] == "acme-rx200-in-2026" and report["agreement"]["signed_by"] == []
    page = get(token, f"{server.url}{check['page']}")
    assert page.status_code == 200 and 'id="verdict-software"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    listed = get(token, f"{server.url}/api/checks", params={"state": "done"}).json()
    assert created["id"] in [c["id"] for c in listed]
    assert created["id"][:12] in get(token, server.url + "/").text


def test_signed_agreement_is_verified_with_the_parties_keys(server: Server, token: str, tmp_path: Path) -> None:
    vendor, customer = generate("acme.example"), generate("bharat.example")
    signed = tmp_path / "a.dsse.json"
    signed.write_text(agr.sign(EXAMPLE_AGREEMENT, vendor).to_json())
    signed.write_text(agr.sign(signed, customer).to_json())
    files = [
        ("agreement", ("a.dsse.json", signed.read_bytes())),
        ("keys", ("acme.vkey", f"{vendor.verifier}\n".encode())),
        ("keys", ("bharat.vkey", f"{customer.verifier}\n".encode())),
    ]
    check = wait_finished(server.url, submit(server.url, token, files).json()["id"], token)
    assert check["state"] == "done"
    report = get(token, f"{server.url}{check['report']}").json()
    assert report["agreement"]["signed_by"] == [vendor.verifier.label, customer.verifier.label]
    html = get(token, f"{server.url}{check['report']}", params={"format": "html"}).text
    assert vendor.verifier.label in html and customer.verifier.label in html

    # a party that did not sign: the check fails with the reason, it is not a pass
    stranger = generate("stranger.example")
    files[2] = ("keys", ("stranger.vkey", f"{stranger.verifier}\n".encode()))
    failed = wait_finished(server.url, submit(server.url, token, files).json()["id"], token)
    assert failed["state"] == "failed" and "stranger.example" in failed["error"]
    assert str(server.data) not in failed["error"]
    assert get(token, f"{server.url}{failed['report']}").status_code == 409


def test_writes_and_file_downloads_need_a_token(server: Server, token: str) -> None:
    assert submit(server.url, None, _agreement()).status_code == 401
    assert submit(server.url, "nospy_not-a-token", _agreement()).status_code == 401
    check = wait_finished(server.url, submit(server.url, token, _agreement()).json()["id"], token)
    digest = check["files"][0]["sha256"]
    url = f"{server.url}/api/files/{digest}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nospy_wrong"}).status_code == 401
    ok = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.content == EXAMPLE_AGREEMENT.read_bytes()
    assert ok.headers["content-type"] == "application/octet-stream"
    missing = f"{server.url}/api/files/{'0' * 64}"
    assert httpx.get(missing, headers={"Authorization": f"Bearer {token}"}).status_code == 404
    assert f'href="/api/files/{digest}"' in get(token, f"{server.url}{check['page']}").text


def test_reads_need_a_token_unless_the_server_opens_them(server: Server, token: str, tmp_path: Path) -> None:
    check = wait_finished(server.url, submit(server.url, token, _agreement()).json()["id"], token)
    for path in ("/api/checks", f"/api/checks/{check['id']}", check["report"], f"/api/diffs/{'a' * 32}"):
        for headers in ({}, {"Authorization": "Bearer nospy_wrong"}):
            r = httpx.get(f"{server.url}{path}", headers=headers)
            assert r.status_code == 401 and "acme" not in r.text, path
    for path in ("/", check["page"], f"/checks/{check['id']}/report.html", f"/diffs/{'a' * 32}"):
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={path}", path
    # the transparency log is public by nature, and so is the health check
    assert httpx.get(f"{server.url}/healthz").status_code == 200

    data = tmp_path / "public"
    writer = new_token(data, "writer")
    with running(data, {"NOSPY_PUBLIC_READ": "1"}) as public:
        opened = wait_finished(public.url, submit(public.url, writer, _agreement()).json()["id"], writer)
        assert httpx.get(f"{public.url}/api/checks/{opened['id']}").json()["state"] == "done"
        page = httpx.get(f"{public.url}{opened['page']}")
        assert page.status_code == 200 and 'id="verdict-software"' in page.text
        # downloads of uploaded files and writes still need a token
        assert httpx.get(f"{public.url}/api/files/{opened['files'][0]['sha256']}").status_code == 401
        assert submit(public.url, None, _agreement()).status_code == 401


def test_no_request_path_reaches_the_file_system(server: Server, token: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/nospy.db", "nospy.db", "0" * 63 + "/"):
        r = httpx.get(f"{server.url}/api/files/{path}", headers=auth, follow_redirects=True)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert b"root:" not in r.content
    files = [("agreement", ("../../../../tmp/evil\x00name.yaml", EXAMPLE_AGREEMENT.read_bytes()))]
    check = wait_finished(server.url, submit(server.url, token, files).json()["id"], token)
    # the last component only, for display (the client percent-encodes the NUL)
    assert check["files"][0]["name"] == "evil%00name.yaml"
    blobs = server.data / "blobs"
    names = {p.name for p in blobs.rglob("*") if p.is_file()}
    assert names and all(len(n) == 64 and set(n) <= set("0123456789abcdef") for n in names)


def test_upload_limits(server: Server, token: str) -> None:
    big = [("agreement", ("a.yaml", b"#" * (LIMIT + 1)))]
    assert submit(server.url, token, big).status_code == 413
    too_many = _agreement() + [("keys", (f"k{i}.vkey", b"x")) for i in range(5)]
    assert submit(server.url, token, too_many).status_code == 413
    # a body without a length could be endless: refused before it is read
    chunks = iter([b"--x\r\n", b"x" * 100])
    r = httpx.post(
        f"{server.url}/api/checks",
        content=chunks,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 411


def test_bad_input_is_refused_at_upload_with_its_reason(server: Server, token: str) -> None:
    bad = EXAMPLE_AGREEMENT.read_text().replace("port: 22,", "port: 70000,")
    r = submit(server.url, token, [("agreement", ("mine.yaml", bad.encode()))])
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("mine.yaml:") and "services[0].port: must be 1-65535" in detail
    assert str(server.data) not in detail
    r = submit(server.url, token, [*_agreement(), ("keys", ("k.vkey", b"not a key"))])
    assert r.status_code == 422
    # evidence kinds whose sources this build lacks are named, not silently dropped
    r = submit(server.url, token, [*_agreement(), ("log", ("image.tlog-proof", b"proof"))])
    assert r.status_code == 422 and "log evidence is not supported" in r.json()["detail"]


def test_untrusted_text_is_escaped_on_pages(server: Server, token: str) -> None:
    hostile = EXAMPLE_AGREEMENT.read_text().replace(
        "title: No-backdoor agreement for ACME RX200 access routers", "title: <script>alert(1)</script>"
    )
    check = wait_finished(
        server.url,
        submit(server.url, token, [("agreement", ("<img src=x>.yaml", hostile.encode()))]).json()["id"],
        token,
    )
    for path in (check["page"], f"/checks/{check['id']}/report.html", "/"):
        text = get(token, f"{server.url}{path}").text
        assert "<script>alert(1)" not in text and "<img src=x>" not in text


def _browser_form(parts: list[tuple[str, str, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        out += b"------nospyform\r\n"
        out += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    return out + b"------nospyform--\r\n"


def test_login_cookie_and_cross_site_posts(server: Server, token: str) -> None:
    with httpx.Client(base_url=server.url) as browser:
        assert browser.get("/checks/new").status_code == 303  # to the login page
        assert browser.post("/login", data={"token": "nospy_wrong"}).status_code == 401
        # after logging in, back to the page that asked for it, and never to another site
        assert 'value="/checks"' in browser.get("/login", params={"next": "/checks"}).text
        for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            assert 'name="next" value="/"' in browser.get("/login", params={"next": elsewhere}).text
        r = browser.post("/login", data={"token": token, "next": "/api/checks"})
        assert r.status_code == 303 and r.headers["location"] == "/api/checks"
        assert browser.get("/api/checks").status_code == 200  # the cookie authorises reads
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/checks/new").status_code == 200
        # the form as a browser sends it: an empty part (filename="") for each file input left empty
        body = _browser_form(
            [("agreement", "agreement.yaml", EXAMPLE_AGREEMENT.read_bytes())]
            + [(n, "", b"") for n in ("keys", "firmware", "traffic", "inventory", "infrastructure", "log")]
        )
        form = {"Content-Type": "multipart/form-data; boundary=----nospyform", "Origin": server.url}
        r = browser.post("/checks/new", content=body, headers=form)
        assert r.status_code == 303 and r.headers["location"].startswith("/checks/")
        # the same post started from another site's page, or from nowhere said, is not authorised
        for origin in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {}):
            headers = {"Content-Type": form["Content-Type"], **origin}
            evil = browser.post("/checks/new", content=body, headers=headers)
            assert evil.status_code == 303 and evil.headers["location"] == "/login", origin
        referred = {"Content-Type": form["Content-Type"], "Referer": f"{server.url}/checks/new"}
        assert browser.post("/checks/new", content=body, headers=referred).headers["location"].startswith("/checks/")
        check = wait_finished(server.url, r.headers["location"].rsplit("/", 1)[1], token)
        assert check["state"] == "done"
        page = browser.get(check["page"]).text
        assert f'href="/api/files/{check["files"][0]["sha256"]}"' in page
        assert browser.post("/logout").status_code == 303
        assert browser.get("/checks/new").status_code == 303
        assert browser.get(check["page"]).status_code == 303 and browser.get("/api/checks").status_code == 401


def test_unknown_check_and_malformed_ids(server: Server, token: str) -> None:
    assert get(token, f"{server.url}/api/checks/{'a' * 32}").status_code == 404
    assert get(token, f"{server.url}/api/checks/not-an-id").status_code == 422
    assert get(token, f"{server.url}/checks/{'a' * 32}").status_code == 404
    assert get(token, f"{server.url}/api/diffs/{'a' * 32}").status_code == 404
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert set(spec["paths"]) == {
        "/api/checks",
        "/api/checks/{check_id}",
        "/api/checks/{check_id}/report",
        "/api/diffs",
        "/api/diffs/{diff_id}",
        "/api/files/{sha256}",
        "/api/history",
        "/api/history/{product}",
        "/healthz",
    }
    assert json.loads(httpx.get(f"{server.url}/healthz").text)["ok"] is True


def test_tokens_are_made_and_revoked_from_the_command_line(server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    from nospy.cli import run

    data = str(server.data)
    assert run(["serve", "--data", data, "--new-token", "short-lived"]) == 0
    token = capsys.readouterr().out.strip()
    assert submit(server.url, token, _agreement()).status_code == 202
    assert run(["serve", "--data", data, "--new-token", "short-lived"]) == 2  # names are unique
    assert run(["serve", "--data", data, "--revoke-token", "short-lived"]) == 0
    assert submit(server.url, token, _agreement()).status_code == 401
    assert run(["serve", "--data", data, "--revoke-token", "short-lived"]) == 2
