"""The FastAPI application: JSON API under ``/api``, server-rendered pages everywhere else.

Who may do what: anyone who can reach the server may read checks, verdicts and findings (bind it to
an address only the evaluation team reaches; the default is 127.0.0.1); starting checks and
downloading uploaded files (firmware images are often confidential) need an API token.

Request bodies are limited before they are read (`BodyLimit`); uploaded files are stored by digest,
so no name or path from a request ever reaches the file system. Pages carry a strict Content
Security Policy: no inline script, nothing loaded from another origin.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from nospy import __version__, keys
from nospy import agreement as agr
from nospy.errors import InputError, NospyError, VerificationError
from nospy.evidence import Kind, build_sources
from nospy.findings import Report
from nospy.keys import read_verifier_key
from nospy.ledger.interface import LogSource, open_source
from nospy.ledger.tiles import TILE_WIDTH, TileCache
from nospy.report import Format, render
from nospy.report import html as html_report
from nospy.server import history, logview
from nospy.server.auth import COOKIE, lookup
from nospy.server.db import Check, Event, State, connect, migrate
from nospy.server.db import File as FileRow
from nospy.server.jobs import Worker, recover
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
        # a cookie rides along on requests other sites start: refuse writes from another origin
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and urlsplit(origin).netloc != request.url.netloc:
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
Upload = Annotated[UploadFile, File(description="The agreement: signed (DSSE JSON) or plain YAML/JSON.")]
Keys = Annotated[list[UploadFile] | None, File(description="Verifier keys (.vkey) of parties that must have signed.")]
Evidence = Annotated[list[UploadFile] | None, File(description="Evidence files of this kind.")]
CheckIdParam = Annotated[str, PathParam(pattern=_CHECK_ID, description="The check's id (32 hex digits).")]
DigestParam = Annotated[str, PathParam(pattern=_DIGEST, description="The file's SHA-256 (64 hex digits).")]


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="Why the request was refused: a message, or the fields that failed validation."
    )


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    reasons = {
        401: "no API token, or an unknown one",
        404: "no such check or file",
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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine, sessions = connect(settings.url)
    migrate(engine)
    store = BlobStore(settings.blob_dir)
    worker = Worker(sessions, store, settings.workers)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        recover(sessions, settings.max_attempts)
        worker.start()
        yield
        worker.stop()
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
    pages = Environment(
        loader=PackageLoader("nospy.server", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
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
        agreement = next(r for r in rows if r.role == "agreement")
        try:
            agr.load(store.path(agreement.sha256))
            for r in rows:
                if r.role == "key":
                    read_verifier_key(store.path(r.sha256))
            evidence: dict[str, list[Any]] = {}
            for r in rows:
                if r.role not in ("agreement", "key"):
                    evidence.setdefault(r.role, []).append(store.path(r.sha256))
            build_sources(evidence)
        except InputError as exc:
            text = str(exc)
            for r in rows:
                text = text.replace(str(store.path(r.sha256)), r.name)
            raise HTTPException(422, text) from None
        with sessions.begin() as session:
            c = Check(id=check_id, created_by=user, state=State.QUEUED.value, attempts=0, progress="queued")
            c.files = rows
            c.events = [Event(text=f"queued by {user}")]
            session.add(c)
        worker.wake()
        return c

    def collect(
        agreement: UploadFile, keys: list[UploadFile] | None, evidence: dict[str, list[UploadFile] | None]
    ) -> list[tuple[str, UploadFile]]:
        # browsers send an empty part for a file input left empty
        def given(files: list[UploadFile] | None) -> list[UploadFile]:
            return [f for f in files or [] if f.filename or (f.size or 0) > 0]

        uploads = [("agreement", agreement)] + [("key", k) for k in given(keys)]
        for kind, files in evidence.items():
            uploads += [(kind, f) for f in given(files)]
        return uploads

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
        responses=_errors(401, 411, 413, 422),
    )
    def create_check(
        *,
        user: Writer,
        agreement: Upload,
        keys: Keys = None,
        firmware: Evidence = None,
        traffic: Evidence = None,
        inventory: Evidence = None,
        infrastructure: Evidence = None,
        log: Evidence = None,
    ) -> dict[str, Any]:
        """Queue a check of the agreement against the evidence; poll the check until it is done or failed."""
        evidence = {
            Kind.FIRMWARE.value: firmware,
            Kind.TRAFFIC.value: traffic,
            Kind.INVENTORY.value: inventory,
            Kind.INFRASTRUCTURE.value: infrastructure,
            Kind.LOG.value: log,
        }
        return _out(submit(user, collect(agreement, keys, evidence)))

    @app.get("/api/checks", response_model=list[CheckOut], tags=["checks"], responses=_errors(422))
    def list_checks(
        session: Db,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        state: State | None = None,
    ) -> list[dict[str, Any]]:
        """Checks, newest first."""
        q = select(Check).order_by(Check.created.desc(), Check.id).limit(limit).offset(offset)
        if state is not None:
            q = q.where(Check.state == state.value)
        return [_out(c) for c in session.scalars(q)]

    @app.get("/api/checks/{check_id}", response_model=CheckDetail, tags=["checks"], responses=_errors(404, 422))
    def get_check(session: Db, check_id: CheckIdParam) -> CheckDetail:
        """A check's state, progress, files and (once done) verdicts."""
        return _detail(load_check(session, check_id))

    @app.get(
        "/api/checks/{check_id}/report",
        tags=["checks"],
        responses={**_errors(404, 409, 422), 200: {"content": {m: {} for m in sorted(set(_MEDIA.values()))}}},
    )
    def get_report(
        session: Db,
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
    def index(session: Db, user: User) -> HTMLResponse:
        checks = session.scalars(select(Check).order_by(Check.created.desc()).limit(200)).all()
        return page("index.html.j2", checks=checks, user=user)

    @app.get("/login", include_in_schema=False)
    def login_form(user: User) -> HTMLResponse:
        return page("login.html.j2", user=user, error=None)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, session: Db, token: Annotated[str, Form(max_length=256)]) -> Response:
        name = lookup(session, token.strip())
        if name is None:
            return page("login.html.j2", 401, user=None, error="unknown token")
        response = RedirectResponse("/", 303)
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
    def new_check(
        *,
        user: User,
        agreement: Upload,
        keys: Keys = None,
        firmware: Evidence = None,
        traffic: Evidence = None,
        inventory: Evidence = None,
        infrastructure: Evidence = None,
        log: Evidence = None,
    ) -> Response:
        if user is None:
            return RedirectResponse("/login", 303)
        evidence = {"firmware": firmware, "traffic": traffic, "inventory": inventory}
        evidence |= {"infrastructure": infrastructure, "log": log}
        try:
            c = submit(user, collect(agreement, keys, evidence))
        except HTTPException as exc:
            return page("new.html.j2", exc.status_code, user=user, error=exc.detail)
        return RedirectResponse(f"/checks/{c.id}", 303)

    @app.get("/checks/{check_id}", include_in_schema=False)
    def check_page(session: Db, user: User, check_id: CheckIdParam) -> HTMLResponse:
        c = load_check(session, check_id)
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
        )

    @app.get("/checks/{check_id}/report.html", include_in_schema=False)
    def check_report_html(session: Db, check_id: CheckIdParam) -> HTMLResponse:
        c = load_check(session, check_id)
        if c.report_json is None:
            raise HTTPException(409, f"the check is {c.state}, it has no report")
        return HTMLResponse(html_report.render(Report.model_validate_json(c.report_json)))

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
        return page("log.html.j2", 502, user=user, error=str(exc), signed=None, rows=[], cosignatures=[])

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
            cosignatures=logview.signature_names(signed.note),
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

    app.include_router(history.router)  # the monitor's release history: its own module and templates

    @app.exception_handler(NospyError)
    async def _nospy_error(_request: Request, exc: NospyError) -> Response:
        return JSONResponse({"detail": str(exc)}, 413 if isinstance(exc, UploadTooLargeError) else 422)

    return app
