"""History pages of ``nospy monitor``: products, each product's releases with their verdict per clause,
and each release's stored report and change (clause transitions, new findings, firmware diff).

A router of its own (included by `nospy.server.app.create_app`), with its own templates; it reads
what the monitor wrote (`nospy.monitor.history`) and changes nothing. Like the check pages, it is
read only by users with a token, unless the server was started with public reads (``create_app``
includes it under the same reader dependency).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from nospy import __version__
from nospy.findings import Report
from nospy.monitor import history as hist
from nospy.report import html as html_report
from nospy.server.auth import COOKIE, lookup

__all__ = ["router"]

router = APIRouter()

_pages = html_report.template_environment("nospy.server")
_pages.globals["version"] = __version__

_PRODUCT = r"^[^/\x00-\x1f]{1,256}$"


def _session(request: Request) -> Iterator[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    with sessions() as session:
        yield session


Db = Annotated[Session, Depends(_session)]
ProductParam = Annotated[str, PathParam(pattern=_PRODUCT, description="Product identifier.")]
ReleaseParam = Annotated[int, PathParam(ge=1, le=1 << 62, description="The release's id.")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no releases of this product"}}


def _page(request: Request, session: Session, name: str, **context: Any) -> HTMLResponse:
    # the navigation bar names who is logged in; the pages themselves need no token
    user = lookup(session, request.cookies.get(COOKIE))
    has_log = getattr(request.app.state.settings, "log", None) is not None
    return HTMLResponse(_pages.get_template(name).render(user=user, has_log=has_log, **context))


def _checked(session: Session, release_id: int) -> tuple[str, str]:
    """A checked release's report and diff (JSON); 404 for no such release, 409 for one not checked yet."""
    found = hist.release(session, release_id)
    if found is None:
        raise HTTPException(404, "no such release")
    _, report, diff = found
    if report is None or diff is None:
        raise HTTPException(409, "this release has not been checked yet")
    return report, diff


@router.get("/api/history", tags=["history"])
def api_products(session: Db) -> list[hist.ProductSummary]:
    """Every product the monitor has seen releases of, with its latest release."""
    return hist.products(session)


@router.get("/api/history/{product}", tags=["history"], responses=_NOT_FOUND)
def api_product(session: Db, product: ProductParam) -> list[hist.ReleaseRow]:
    """Every release of the product, oldest first: verdict per clause, clauses that newly fail."""
    rows = hist.releases(session, product)
    if not rows:
        raise HTTPException(404, "no releases of this product")
    return rows


@router.get("/history", include_in_schema=False)
def products_page(request: Request, session: Db) -> HTMLResponse:
    return _page(request, session, "history.html.j2", products=hist.products(session))


@router.get("/history/{product}", include_in_schema=False)
def product_page(request: Request, session: Db, product: ProductParam) -> HTMLResponse:
    rows = hist.releases(session, product)
    if not rows:
        raise HTTPException(404, "no releases of this product")
    clauses = list(dict.fromkeys(c for r in rows for c in r.verdicts))
    return _page(request, session, "history_product.html.j2", product=product, rows=rows, clauses=clauses)


@router.get("/history/releases/{release_id}/report.html", include_in_schema=False)
def release_report_html(session: Db, release_id: ReleaseParam) -> HTMLResponse:
    report, _ = _checked(session, release_id)
    return HTMLResponse(html_report.render(Report.model_validate_json(report)))


@router.get("/history/releases/{release_id}/report.json", include_in_schema=False)
def release_report_json(session: Db, release_id: ReleaseParam) -> Response:
    """The release's report (the JSON report of DESIGN.md)."""
    report, _ = _checked(session, release_id)
    return Response(report, media_type="application/json")


@router.get("/history/releases/{release_id}/diff.json", include_in_schema=False)
def release_diff_json(session: Db, release_id: ReleaseParam) -> Response:
    """What changed since the product's previous release: clause transitions, findings, firmware diff."""
    _, diff = _checked(session, release_id)
    return Response(diff, media_type="application/json")
