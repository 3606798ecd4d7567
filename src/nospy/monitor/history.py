"""The monitor's history: per product, every release seen with its verdict per clause.

Read by ``nospy history`` and the web service's history pages, from the tables `nospy.monitor.run`
writes.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nospy.server.db import MonitorLog, MonitorRelease, MonitorWatch

__all__ = ["ProductSummary", "ReleaseRow", "products", "release", "releases"]


class ReleaseRow(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int = Field(description="The release's id in the database (for its report and diff).")
    product: str
    version: str
    log_origin: str
    log_index: int
    sha256: str = Field(description="SHA-256 of the image, as the signed release manifest names it.")
    image: str = Field(description="The image's name in the manifest.")
    agreement_id: str
    state: str = Field(description="done, missing (image not in the store yet), pending, or error.")
    problem: str | None
    found: datetime
    checked: datetime | None
    verdicts: dict[str, str] = Field(description="Status per clause: pass, fail, not-checked.")
    new_failing: list[str] = Field(description="Clauses failing in this release and not in the previous one.")
    previous_id: int | None


class ProductSummary(BaseModel):
    model_config = ConfigDict(frozen=True)
    product: str
    releases: int
    latest: ReleaseRow


def _row(rel: MonitorRelease, watch: MonitorWatch, log: MonitorLog) -> ReleaseRow:
    return ReleaseRow(
        id=rel.id,
        product=rel.product,
        version=rel.version,
        log_origin=log.origin,
        log_index=rel.log_index,
        sha256=rel.sha256,
        image=rel.image_name,
        agreement_id=watch.agreement_id,
        state=rel.state,
        problem=rel.problem,
        found=rel.found,
        checked=rel.checked,
        verdicts=json.loads(rel.verdicts_json) if rel.verdicts_json else {},
        new_failing=json.loads(rel.new_failing_json) if rel.new_failing_json else [],
        previous_id=rel.previous_id,
    )


def releases(session: Session, product: str) -> list[ReleaseRow]:
    """Every release of ``product`` the monitor recorded, oldest first (by log, then log index)."""
    rows = session.execute(
        select(MonitorRelease, MonitorWatch, MonitorLog)
        .join(MonitorWatch, MonitorRelease.watch_id == MonitorWatch.id)
        .join(MonitorLog, MonitorWatch.log_id == MonitorLog.id)
        .where(MonitorRelease.product == product)
        .order_by(MonitorLog.origin, MonitorWatch.agreement_id, MonitorRelease.log_index)
    ).all()
    return [_row(r, w, lg) for r, w, lg in rows]


def products(session: Session) -> list[ProductSummary]:
    """Every product with releases, with its count and latest release."""
    counts = session.execute(
        select(MonitorRelease.product, func.count(), func.max(MonitorRelease.id))
        .group_by(MonitorRelease.product)
        .order_by(MonitorRelease.product)
    ).all()
    out = []
    for product, count, last_id in counts:
        rel, watch, log = session.execute(
            select(MonitorRelease, MonitorWatch, MonitorLog)
            .join(MonitorWatch, MonitorRelease.watch_id == MonitorWatch.id)
            .join(MonitorLog, MonitorWatch.log_id == MonitorLog.id)
            .where(MonitorRelease.id == last_id)
        ).one()
        out.append(ProductSummary(product=product, releases=count, latest=_row(rel, watch, log)))
    return out


def release(session: Session, release_id: int) -> tuple[ReleaseRow, str | None, str | None] | None:
    """One release's row, report JSON and change JSON, or None."""
    found = session.execute(
        select(MonitorRelease, MonitorWatch, MonitorLog)
        .join(MonitorWatch, MonitorRelease.watch_id == MonitorWatch.id)
        .join(MonitorLog, MonitorWatch.log_id == MonitorLog.id)
        .where(MonitorRelease.id == release_id)
    ).first()
    if found is None:
        return None
    rel, watch, log = found
    return _row(rel, watch, log), rel.report_json, rel.diff_json
