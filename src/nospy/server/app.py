"""The FastAPI application: JSON API under ``/api``, server-rendered pages everywhere else.

Who may do what: reading checks, findings, reports and image diffs needs an API token (``Authorization:
Bearer``) or, in a browser, the HttpOnly SameSite=Strict cookie the login form sets from a token:
evaluation results about a vendor's equipment are sensitive. ``public_read`` opens reads to anyone
who reaches the server. Starting checks and diffs and downloading uploaded files (firmware images are
often confidential) always need a token. A form post authorised by the cookie must come from a page
of this server (its Origin or Referer), besides the cookie's SameSite=Strict.

Request bodies are limited before they are read (`BodyLimit`); uploaded files are stored by digest,
so no name or path from a request ever reaches the file system. Pages carry a strict Content
Security Policy: no inline script, nothing loaded from another origin.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from nospy import __version__, keys
from nospy.errors import InputError, NospyError, VerificationError
from nospy.evidence import Kind
from nospy.findings import Finding, Report
from nospy.keys import read_verifier_key
from nospy.ledger.checkpoint import CosignerKey, parse_cosigner_key
from nospy.ledger.interface import LogSource, open_source
from nospy.ledger.tiles import TILE_WIDTH, TileCache
from nospy.report import Format, render
from nospy.report import html as html_report
from nospy.server import history, logview
from nospy.server.auth import COOKIE, lookup
from nospy.server.db import Check, Diff, Event, State, connect, migrate
from nospy.server.db import File as FileRow
from nospy.server.jobs import JobStoppedError, Validators, Worker, recover
from nospy.server.settings import Settings
from nospy.server.store import BlobStore, UploadTooLargeError

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MEDIA = {
    Format.TABLE: "text/plain; charset=utf-8",
    Format.JSON: "application/json",
    Format.HTML: "text/html; charset=utf-8",
    Format.SARIF: "application/sarif+json",
    Format.OSCAL: "application/json",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_CHECK_ID = r"^[0-9a-f]{32}$"
_DIGEST = r"^[0-9a-f]{64}$"
MAX_AGREEMENT_UPLOAD = 16 << 20
MAX_KEY_UPLOAD = 4096


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes before any of it is parsed or spooled to disk."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is None and b"chunked" in headers.get(b"transfer-encoding", b""):
            await JSONResponse({"detail": "a Content-Length is required"}, 411)(scope, receive, send)
            return
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await JSONResponse({"detail": f"request body larger than {self.limit} bytes"}, 413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # the server already enforces Content-Length; this is belt and braces
                raise UploadTooLargeError("request body larger than announced")
            return message

        await self.app(scope, counted, send)


def _db(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


Db = Annotated[Session, Depends(_db)]


def _user(request: Request) -> str | None:
    """The name of the token the request carries (header, or the login cookie), or None."""
    auth = request.headers.get("authorization", "")
    token: str | None = None
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    elif COOKIE in request.cookies:
        # a cookie rides along on requests other sites start: a post it authorises must name this
        # server as its origin (browsers send Origin on posts; Referrer-Policy same-origin keeps Referer)
        origin = request.headers.get("origin") or request.headers.get("referer")
        if request.method not in ("GET", "HEAD") and (not origin or urlsplit(origin).netloc != request.url.netloc):
            return None
        token = request.cookies[COOKIE]
    if token is None:
        return None
    # its own short session: a request must not hold one connection while it waits for another
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        return lookup(session, token)


User = Annotated[str | None, Depends(_user)]


def _require_user(user: User) -> str:
    if user is None:
        raise HTTPException(401, "an API token is needed", headers={"WWW-Authenticate": "Bearer"})
    return user


Writer = Annotated[str, Depends(_require_user)]


class LoginRequiredError(Exception):
    """A page that needs a logged-in user was asked for without one: answered by the login page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _reader(request: Request, user: User) -> str | None:
    """Who reads: a token's name; None only when the server was started with public reads."""
    if user is None and not request.app.state.settings.public_read:
        if request.url.path.startswith("/api/"):
            raise HTTPException(401, "an API token is needed to read", headers={"WWW-Authenticate": "Bearer"})
        raise LoginRequiredError(request.url.path)
    return user


Reader = Annotated[str | None, Depends(_reader)]
Upload = Annotated[UploadFile, File(description="The agreement: signed (DSSE JSON) or plain YAML/JSON.")]
Keys = Annotated[list[UploadFile] | None, File(description="Verifier keys (.vkey) of parties that must have signed.")]
Evidence = Annotated[list[UploadFile] | None, File(description="Evidence files of this kind.")]


class CheckUploads:
    """The files of a new check, as the API and the browser's form both send them (multipart)."""

    def __init__(
        self,
        *,
        agreement: Upload,
        keys: Keys = None,
        firmware: Evidence = None,
        traffic: Evidence = None,
        inventory: Evidence = None,
        infrastructure: Evidence = None,
        log: Evidence = None,
    ) -> None:
        evidence = {
            Kind.FIRMWARE: firmware,
            Kind.TRAFFIC: traffic,
            Kind.INVENTORY: inventory,
            Kind.INFRASTRUCTURE: infrastructure,
            Kind.LOG: log,
        }

        # browsers send an empty part for a file input left empty
        def given(files: list[UploadFile] | None) -> list[UploadFile]:
            return [f for f in files or [] if f.filename or (f.size or 0) > 0]

        self.files: list[tuple[str, UploadFile]] = [("agreement", agreement)] + [("key", k) for k in given(keys)]
        for kind, files in evidence.items():
            self.files += [(kind.value, f) for f in given(files)]


Uploads = Annotated[CheckUploads, Depends()]
CheckIdParam = Annotated[str, PathParam(pattern=_CHECK_ID, description="The check's id (32 hex digits).")]
DiffIdParam = Annotated[str, PathParam(pattern=_CHECK_ID, description="The diff's id (32 hex digits).")]
DigestParam = Annotated[str, PathParam(pattern=_DIGEST, description="The file's SHA-256 (64 hex digits).")]


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="Why the request was refused: a message, or the fields that failed validation."
    )


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    reasons = {
        400: "the request body cannot be parsed (not JSON, or not multipart form data)",
        401: "no API token, or an unknown one",
        404: "no such check, file or diff, or a check without firmware evidence",
        409: "the check has no report yet",
        411: "the request body has no length",
        413: "the request body or a file is too large, or there are too many files",
        422: "invalid parameters, or an agreement, key or evidence that cannot be used",
    }
    return {code: {"model": ErrorOut, "description": reasons[code]} for code in codes}


class FileOut(BaseModel):
    role: str = Field(description="agreement, key, or the evidence kind.")
    name: str = Field(description="The file name as uploaded (display only).")
    sha256: str
    size: int


class EventOut(BaseModel):
    at: datetime
    text: str


class CheckOut(BaseModel):
    id: str
    state: State
    created: datetime
    updated: datetime
    attempts: int = Field(description="Runs started, counting runs a server restart interrupted.")
    progress: str = Field(description="The latest progress line.")
    agreement_id: str | None
    summary: str | None = Field(description="Verdict counts, e.g. '2 fail, 6 not-checked'.")
    outcome: str | None = Field(description="fail if a clause fails, pass if all pass, else not-checked.")
    error: str | None
    page: str
    report: str


class CheckDetail(CheckOut):
    files: list[FileOut]
    events: list[EventOut]
    verdicts: list[dict[str, Any]] = Field(description="The report's verdicts, once done.")


class DiffRequest(BaseModel):
    new_check: str = Field(pattern=_CHECK_ID, description="The check whose firmware image is the newer one.")
    old_check: str | None = Field(
        None,
        pattern=_CHECK_ID,
        description="The check whose image is the older one; default: the newest earlier check with firmware.",
    )
    new_image: str | None = Field(
        None, pattern=_DIGEST, description="Which of new_check's firmware files (SHA-256); default: its first."
    )
    old_image: str | None = Field(
        None, pattern=_DIGEST, description="Which of old_check's firmware files (SHA-256); default: its first."
    )


class ImageOut(BaseModel):
    check: str = Field(description="The check the image was uploaded with.")
    name: str = Field(description="The file name as uploaded (display only).")
    sha256: str


class DiffOut(BaseModel):
    id: str
    state: State
    created: datetime
    updated: datetime
    attempts: int
    progress: str
    error: str | None
    old: ImageOut
    new: ImageOut
    page: str
    result: dict[str, Any] | None = Field(
        description="Once done: files added/removed/changed, inventory changes, findings added and removed."
    )


def _diff_out(d: Diff) -> DiffOut:
    return DiffOut(
        id=d.id,
        state=State(d.state),
        created=d.created,
        updated=d.updated,
        attempts=d.attempts,
        progress=d.progress,
        error=d.error,
        old=ImageOut(check=d.old_check, name=d.old_name, sha256=d.old_sha256),
        new=ImageOut(check=d.new_check, name=d.new_name, sha256=d.new_sha256),
        page=f"/diffs/{d.id}",
        result=json.loads(d.result_json) if d.result_json else None,
    )


def _out(c: Check) -> dict[str, Any]:
    return {
        "id": c.id,
        "state": State(c.state),
        "created": c.created,
        "updated": c.updated,
        "attempts": c.attempts,
        "progress": c.progress,
        "agreement_id": c.agreement_id,
        "summary": c.summary,
        "outcome": c.outcome,
        "error": c.error,
        "page": f"/checks/{c.id}",
        "report": f"/api/checks/{c.id}/report",
    }


def _detail(c: Check) -> CheckDetail:
    verdicts = Report.model_validate_json(c.report_json).model_dump(mode="json")["verdicts"] if c.report_json else []
    return CheckDetail(
        **_out(c),
        files=[FileOut(role=f.role, name=f.name, sha256=f.sha256, size=f.size) for f in c.files],
        events=[EventOut(at=e.at, text=e.text) for e in c.events[-200:]],
        verdicts=verdicts,
    )


def display_name(name: str | None) -> str:
    """An uploaded file's name for display: its last component, printable, bounded."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:200].strip()
    return base if base not in ("", ".", "..") else "upload"


def _read_key(path: Any) -> str:
    try:
        text: str = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"witness key {path}: cannot be read: {exc}") from None
    return text


def _witness_key(path: Any) -> CosignerKey:
    try:
        return parse_cosigner_key(_read_key(path))
    except InputError as exc:
        raise InputError(f"witness key {path}: {exc}") from None


def diff_id(old_sha256: str, new_sha256: str) -> str:
    """A diff's id: from its two images, so the same pair is compared once."""
    return hashlib.sha256(f"nospy diff\n{old_sha256}\n{new_sha256}\n".encode()).hexdigest()[:32]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine, sessions = connect(settings.url)
    migrate(engine)
    store = BlobStore(settings.blob_dir)
    worker = Worker(sessions, store, settings.workers, settings.time_limit)
    validators = Validators(settings.workers)
    witnesses = [_witness_key(p) for p in settings.witness_keys]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        recover(sessions, settings.max_attempts)
        worker.start()
        yield
        worker.stop()
        validators.stop()
        engine.dispose()

    app = FastAPI(
        title="nospy",
        version=__version__,
        description="Check no-spy, no-backdoor agreements: upload an agreement and evidence, read the verdicts.",
        lifespan=lifespan,
        # the interactive docs load their scripts from a CDN; the spec stays at /openapi.json
        docs_url=None,
        redoc_url=None,
    )
    app.state.sessions, app.state.store, app.state.worker, app.state.settings = sessions, store, worker, settings
    pages = html_report.template_environment("nospy.server")
    pages.globals["version"] = __version__
    pages.globals["kinds"] = [k.value for k in Kind]

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # not no-referrer: with it, browsers send "Origin: null" on same-origin form posts too
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)

    def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(pages.get_template(name).render(**context), status_code=status)

    def submit(user: str, uploads: list[tuple[str, UploadFile]]) -> Check:
        if len(uploads) > settings.max_files + 1:
            raise HTTPException(413, f"at most {settings.max_files} files in one check")
        check_id = uuid.uuid4().hex
        rows: list[FileRow] = []
        budget = settings.max_upload_bytes
        for role, upload in uploads:
            limit = {"agreement": MAX_AGREEMENT_UPLOAD, "key": MAX_KEY_UPLOAD}.get(role, budget)
            try:
                digest, size = store.put(upload.file, min(limit, budget))
            except UploadTooLargeError:
                raise HTTPException(413, f"{role} file too large") from None
            budget -= size
            rows.append(FileRow(role=role, name=display_name(upload.filename), sha256=digest, size=size))
        # refuse at once what the check would fail on: an invalid agreement or key, unsupported evidence
        try:
            problem = validators.validate(store.root, [(r.role, r.name, r.sha256) for r in rows])
        except JobStoppedError:
            raise HTTPException(503, "the server is stopping") from None
        if problem:
            raise HTTPException(422, problem)
        with sessions.begin() as session:
            c = Check(id=check_id, created_by=user, state=State.QUEUED.value, attempts=0, progress="queued")
            c.files = rows
            c.events = [Event(text=f"queued by {user}")]
            session.add(c)
        worker.wake()
        return c

    def load_check(session: Session, check_id: str) -> Check:
        c = session.scalars(
            select(Check).where(Check.id == check_id).options(selectinload(Check.files), selectinload(Check.events))
        ).first()
        if c is None:
            raise HTTPException(404, "no such check")
        return c

    # ---- JSON API -------------------------------------------------------------------------------------

    @app.post(
        "/api/checks",
        status_code=202,
        response_model=CheckOut,
        tags=["checks"],
        responses=_errors(400, 401, 411, 413, 422),
    )
    def create_check(user: Writer, uploads: Uploads) -> dict[str, Any]:
        """Queue a check of the agreement against the evidence; poll the check until it is done or failed."""
        return _out(submit(user, uploads.files))

    @app.get("/api/checks", response_model=list[CheckOut], tags=["checks"], responses=_errors(401, 422))
    def list_checks(
        session: Db,
        _reader: Reader,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        state: State | None = None,
    ) -> list[dict[str, Any]]:
        """Checks, newest first."""
        q = select(Check).order_by(Check.created.desc(), Check.id).limit(limit).offset(offset)
        if state is not None:
            q = q.where(Check.state == state.value)
        return [_out(c) for c in session.scalars(q)]

    @app.get("/api/checks/{check_id}", response_model=CheckDetail, tags=["checks"], responses=_errors(401, 404, 422))
    def get_check(session: Db, _reader: Reader, check_id: CheckIdParam) -> CheckDetail:
        """A check's state, progress, files and (once done) verdicts."""
        return _detail(load_check(session, check_id))

    @app.get(
        "/api/checks/{check_id}/report",
        tags=["checks"],
        responses={**_errors(401, 404, 409, 422), 200: {"content": {m: {} for m in sorted(set(_MEDIA.values()))}}},
    )
    def get_report(
        session: Db,
        _reader: Reader,
        check_id: CheckIdParam,
        format: Format = Format.JSON,  # noqa: A002 - the API's word
    ) -> Response:
        """The check's report in any of nospy's formats."""
        c = load_check(session, check_id)
        if c.report_json is None:
            raise HTTPException(409, f"the check is {c.state}, it has no report")
        text = render(Report.model_validate_json(c.report_json), format)
        return Response(text, media_type=_MEDIA[format])

    @app.get(
        "/api/files/{sha256}",
        tags=["files"],
        responses={**_errors(401, 404, 422), 200: {"content": {"application/octet-stream": {}}}},
    )
    def get_file(session: Db, user: Writer, sha256: DigestParam) -> FileResponse:
        """An uploaded file, by its SHA-256 (API token needed)."""
        row = session.scalars(select(FileRow).where(FileRow.sha256 == sha256)).first()
        if row is None:
            raise HTTPException(404, "no such file")
        return FileResponse(store.path(row.sha256), media_type="application/octet-stream", filename=f"{row.sha256}.bin")

    @app.get("/healthz", tags=["service"])
    def healthz(session: Db) -> dict[str, Any]:
        """The service is up and its database answers."""
        queued = session.scalar(select(func.count()).select_from(Check).where(Check.state == State.QUEUED.value))
        return {"ok": True, "version": __version__, "queued": queued}

    # ---- pages ----------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index(session: Db, user: Reader) -> HTMLResponse:
        checks = session.scalars(select(Check).order_by(Check.created.desc()).limit(200)).all()
        return page("index.html.j2", checks=checks, user=user)

    def local(path: str) -> str:
        # only a path on this server: never another site (//host, /\\host) after logging in
        ok = path.startswith("/") and not path.startswith(("//", "/\\")) and path.isprintable()
        return path if ok and len(path) < 512 else "/"

    @app.get("/login", include_in_schema=False)
    def login_form(user: User, next: str = "/") -> HTMLResponse:  # noqa: A002 - the usual name
        return page("login.html.j2", user=user, error=None, next=local(next))

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request,
        session: Db,
        token: Annotated[str, Form(max_length=256)],
        next: Annotated[str, Form(max_length=512)] = "/",  # noqa: A002 - the usual name
    ) -> Response:
        name = lookup(session, token.strip())
        if name is None:
            return page("login.html.j2", 401, user=None, error="unknown token", next=local(next))
        response = RedirectResponse(local(next), 303)
        response.set_cookie(
            COOKIE, token.strip(), httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/", 303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/checks/new", include_in_schema=False)
    def new_form(user: User) -> Response:
        if user is None:
            return RedirectResponse("/login", 303)
        return page("new.html.j2", user=user, error=None)

    @app.post("/checks/new", include_in_schema=False)
    def new_check(user: User, uploads: Uploads) -> Response:
        if user is None:
            return RedirectResponse("/login", 303)
        try:
            c = submit(user, uploads.files)
        except HTTPException as exc:
            return page("new.html.j2", exc.status_code, user=user, error=exc.detail)
        return RedirectResponse(f"/checks/{c.id}", 303)

    @app.get("/checks/{check_id}", include_in_schema=False)
    def check_page(session: Db, user: Reader, check_id: CheckIdParam) -> HTMLResponse:
        c = load_check(session, check_id)
        has_firmware = any(f.role == Kind.FIRMWARE.value for f in c.files)
        others = firmware_checks(session, exclude=c.id) if has_firmware and user else []
        before = predecessor(session, c) if has_firmware else None
        report = Report.model_validate_json(c.report_json) if c.report_json else None
        grouped: dict[str, list[tuple[int, Any]]] = {}
        if report:
            for i, f in enumerate(report.findings):
                grouped.setdefault(f.clause.value, []).append((i, f))
        return page(
            "check.html.j2",
            check=c,
            report=report,
            grouped=grouped,
            user=user,
            finished=State(c.state).finished,
            formats=[f.value for f in Format],
            where=html_report.where_of,
            has_firmware=has_firmware,
            others=others,
            before=before,
        )

    @app.get("/checks/{check_id}/report.html", include_in_schema=False)
    def check_report_html(session: Db, _reader: Reader, check_id: CheckIdParam) -> HTMLResponse:
        c = load_check(session, check_id)
        if c.report_json is None:
            raise HTTPException(409, f"the check is {c.state}, it has no report")
        return HTMLResponse(html_report.render(Report.model_validate_json(c.report_json)))

    # ---- image diffs ------------------------------------------------------------------------------------

    def firmware_of(c: Check, digest: str | None) -> FileRow:
        images = [f for f in c.files if f.role == Kind.FIRMWARE.value]
        chosen = [f for f in images if digest is None or f.sha256 == digest]
        if not chosen:
            what = f"no firmware file {digest}" if images else "no firmware evidence"
            raise HTTPException(404, f"check {c.id} has {what}")
        return chosen[0]

    def firmware_checks(session: Session, exclude: str, limit: int = 100) -> list[Check]:
        has = select(FileRow.check_id).where(FileRow.role == Kind.FIRMWARE.value)
        q = select(Check).where(Check.id.in_(has), Check.id != exclude).order_by(Check.created.desc()).limit(limit)
        return list(session.scalars(q.options(selectinload(Check.files))))

    def predecessor(session: Session, c: Check) -> Check | None:
        """The newest check with firmware evidence created before ``c``."""
        has = select(FileRow.check_id).where(FileRow.role == Kind.FIRMWARE.value)
        q = select(Check).where(Check.id.in_(has), Check.id != c.id, Check.created <= c.created)
        return session.scalars(q.order_by(Check.created.desc(), Check.id).limit(1)).first()

    def request_diff(session: Session, user: str, req: DiffRequest) -> Diff:
        new = load_check(session, req.new_check)
        if req.old_check is not None:
            old = load_check(session, req.old_check)
        else:
            found = predecessor(session, new)
            if found is None:
                raise HTTPException(404, f"no check with firmware evidence before check {new.id}")
            old = found
        a, b = firmware_of(old, req.old_image), firmware_of(new, req.new_image)
        ident = diff_id(a.sha256, b.sha256)
        with sessions.begin() as s:
            d: Diff | None = s.get(Diff, ident)
            if d is not None and d.state == State.FAILED.value:  # asked again: run it again
                d.state, d.attempts, d.error, d.progress = State.QUEUED.value, 0, None, f"queued again by {user}"
            elif d is None:
                d = Diff(id=ident, created_by=user, state=State.QUEUED.value, attempts=0, progress=f"queued by {user}")
                d.old_check, d.old_name, d.old_sha256 = old.id, a.name, a.sha256
                d.new_check, d.new_name, d.new_sha256 = new.id, b.name, b.sha256
                s.add(d)
        worker.wake()
        return d

    def create_diff(session: Session, user: str, req: DiffRequest) -> Diff:
        try:
            return request_diff(session, user, req)
        except IntegrityError:  # the same pair was asked for at the same moment: that one stands
            return request_diff(session, user, req)

    def load_diff(session: Session, ident: str) -> Diff:
        d = session.get(Diff, ident)
        if d is None:
            raise HTTPException(404, "no such diff")
        return d

    @app.post(
        "/api/diffs", status_code=202, response_model=DiffOut, tags=["diffs"], responses=_errors(400, 401, 404, 422)
    )
    def post_diff(session: Db, user: Writer, req: DiffRequest) -> DiffOut:
        """Compare the firmware images of two checks (or of a check and the newest earlier check with
        firmware): files, inventory and findings that came and went. Runs in the background; poll it."""
        return _diff_out(create_diff(session, user, req))

    @app.get("/api/diffs/{diff_id}", response_model=DiffOut, tags=["diffs"], responses=_errors(401, 404, 422))
    def get_diff(session: Db, _reader: Reader, diff_id: DiffIdParam) -> DiffOut:
        """A diff's state and, once done, its result."""
        return _diff_out(load_diff(session, diff_id))

    @app.post("/diffs", include_in_schema=False)
    def new_diff(
        session: Db,
        user: User,
        new_check: Annotated[str, Form(pattern=_CHECK_ID)],
        old_check: Annotated[str | None, Form(pattern=_CHECK_ID)] = None,
    ) -> Response:
        if user is None:
            return RedirectResponse("/login", 303)
        d = create_diff(session, user, DiffRequest(new_check=new_check, old_check=old_check or None))
        return RedirectResponse(f"/diffs/{d.id}", 303)

    @app.get("/diffs/{diff_id}", include_in_schema=False)
    def diff_page(session: Db, user: Reader, diff_id: DiffIdParam) -> HTMLResponse:
        d = load_diff(session, diff_id)
        result = json.loads(d.result_json) if d.result_json else None
        added = [Finding.model_validate(f) for f in result["findings_added"]] if result else []
        removed = [Finding.model_validate(f) for f in result["findings_removed"]] if result else []
        return page(
            "diff.html.j2",
            user=user,
            diff=d,
            result=result,
            added=added,
            removed=removed,
            finished=State(d.state).finished,
            where=html_report.where_of,
        )

    # ---- transparency log (with --log and --log-key) ------------------------------------------------------

    log_key = read_verifier_key(settings.log_key) if settings.log_key is not None else None
    pages.globals["has_log"] = settings.log is not None
    log_tiles = TileCache()  # hashed tiles shared by every entry page: a proof then hashes one tile, not three

    def log_source() -> tuple[LogSource, keys.VerifierKey]:
        if settings.log is None or log_key is None:
            raise HTTPException(404, "this server shows no transparency log (start it with --log and --log-key)")
        return open_source(settings.log), log_key

    def log_error(user: str | None, exc: NospyError) -> HTMLResponse:
        # a checkpoint or proof that does not verify is shown as an error, never as data
        return page("log.html.j2", 502, user=user, error=str(exc), signed=None, rows=[])

    @app.get("/log", include_in_schema=False)
    def log_page(
        user: User,
        offset: Annotated[int, Query(ge=0, le=1 << 62)] = 0,
        limit: Annotated[int, Query(ge=1, le=TILE_WIDTH)] = 50,
    ) -> HTMLResponse:
        source, key = log_source()
        try:
            signed = logview.latest(source, key)
            rows = logview.entries(source, signed, offset, limit)
        except (InputError, VerificationError) as exc:
            return log_error(user, exc)
        return page(
            "log.html.j2",
            user=user,
            error=None,
            signed=signed,
            root=base64.b64encode(signed.checkpoint.root).decode(),
            cosignatures=logview.cosignatures(signed, key, witnesses),
            witness_count=len(witnesses),
            log_key=key.label,
            rows=rows,
            offset=offset,
            limit=limit,
        )

    @app.get("/log/entries/{index}", include_in_schema=False)
    def log_entry_page(user: User, index: Annotated[int, PathParam(ge=0, le=1 << 62)]) -> HTMLResponse:
        source, key = log_source()
        try:
            signed = logview.latest(source, key)
            if index >= signed.checkpoint.size:
                raise HTTPException(404, f"no entry {index}: the log has {signed.checkpoint.size}")
            view = logview.entry(source, signed, index, log_tiles)
        except (InputError, VerificationError) as exc:
            return log_error(user, exc)
        return page(
            "log_entry.html.j2",
            user=user,
            signed=signed,
            root=base64.b64encode(signed.checkpoint.root).decode(),
            view=view,
        )

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/check.js", include_in_schema=False)
    def check_js() -> Response:
        text = (resources.files("nospy.server") / "templates" / "check.js").read_text()
        return Response(text, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})

    # the monitor's release history: its own module and templates, read under the same rule as checks
    app.include_router(history.router, dependencies=[Depends(_reader)])

    @app.exception_handler(LoginRequiredError)
    async def _login_required(_request: Request, exc: LoginRequiredError) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.path)}", 303)

    @app.exception_handler(NospyError)
    async def _nospy_error(_request: Request, exc: NospyError) -> Response:
        return JSONResponse({"detail": str(exc)}, 413 if isinstance(exc, UploadTooLargeError) else 422)

    return app
