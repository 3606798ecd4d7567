"""The monitor's history: per product, every release seen (a row per image) with its verdict per clause.

Read by ``nospy history`` and the web service's history pages, from the tables `nospy.monitor.run`
writes.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from nospy.findings import worst_verdicts
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
    image_index: int = Field(0, description="Its place among the manifest's images (subjects), from 0.")
    image_count: int = Field(1, description="How many images the release's manifest names: a row each.")
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
    releases: int = Field(description="Releases (log entries) recorded, whatever their number of images.")
    latest: ReleaseRow = Field(
        description="The latest release, its images taken together: per clause the worst verdict, every"
        " newly failing clause, and its state done only when every image was checked."
    )


def _row(rel: MonitorRelease, watch: MonitorWatch, log: MonitorLog) -> ReleaseRow:
    return ReleaseRow(
        id=rel.id,
        product=rel.product,
        version=rel.version,
        log_origin=log.origin,
        log_index=rel.log_index,
        sha256=rel.sha256,
        image=rel.image_name,
        image_index=rel.image_index,
        image_count=rel.image_count,
        agreement_id=watch.agreement_id,
        state=rel.state,
        problem=rel.problem,
        found=rel.found,
        checked=rel.checked,
        verdicts=json.loads(rel.verdicts_json) if rel.verdicts_json else {},
        new_failing=json.loads(rel.new_failing_json) if rel.new_failing_json else [],
        previous_id=rel.previous_id,
    )


def _joined() -> Select[MonitorRelease, MonitorWatch, MonitorLog]:
    return (
        select(MonitorRelease, MonitorWatch, MonitorLog)
        .join(MonitorWatch, MonitorRelease.watch_id == MonitorWatch.id)
        .join(MonitorLog, MonitorWatch.log_id == MonitorLog.id)
    )


def releases(session: Session, product: str) -> list[ReleaseRow]:
    """Every release of ``product`` the monitor recorded, a row per image, oldest first (by log, then
    log index, then the image's place in the manifest)."""
    rows = session.execute(
        _joined()
        .where(MonitorRelease.product == product)
        .order_by(MonitorLog.origin, MonitorWatch.agreement_id, MonitorRelease.log_index, MonitorRelease.image_index)
    ).all()
    return [_row(r, w, lg) for r, w, lg in rows]


def products(session: Session) -> list[ProductSummary]:
    """Every product with releases, with its count of releases and its latest release."""
    counts = session.execute(
        select(
            MonitorRelease.product,
            func.count().filter(MonitorRelease.image_index == 0),  # each release has one first image
        )
        .group_by(MonitorRelease.product)
        .order_by(MonitorRelease.product)
    ).all()
    out = []
    for product, count in counts:
        # the latest release is the one furthest in its log, not the row added last: a log read again
        # (a database from before every image was recorded, see migration 0007) adds old releases
        last = session.scalars(
            select(MonitorRelease)
            .where(MonitorRelease.product == product, MonitorRelease.image_index == 0)
            .order_by(MonitorRelease.log_index.desc(), MonitorRelease.id.desc())
            .limit(1)
        ).one()
        images = [
            _row(r, w, lg)
            for r, w, lg in session.execute(
                _joined()
                .where(MonitorRelease.watch_id == last.watch_id, MonitorRelease.log_index == last.log_index)
                .order_by(MonitorRelease.image_index)
            ).all()
        ]
        out.append(ProductSummary(product=product, releases=count, latest=_together(images)))
    return out


def _together(images: list[ReleaseRow]) -> ReleaseRow:
    """The images of one release as one row: no image's failure or missing check is hidden by another."""
    if len(images) == 1:
        return images[0]
    waiting = [r for r in images if r.state != "done"]
    checked = [r.checked for r in images if r.checked is not None]
    return images[0].model_copy(
        update={
            "image": ", ".join(r.image for r in images),
            "verdicts": worst_verdicts(r.verdicts for r in images),
            "new_failing": list(dict.fromkeys(c for r in images for c in r.new_failing)),
            "state": waiting[0].state if waiting else "done",
            "problem": next((f"{r.image}: {r.problem}" for r in waiting if r.problem), None),
            "checked": None if waiting or not checked else max(checked),
        }
    )


def release(session: Session, release_id: int) -> tuple[ReleaseRow, str | None, str | None] | None:
    """One release's row, report JSON and change JSON, or None."""
    found = session.execute(_joined().where(MonitorRelease.id == release_id)).first()
    if found is None:
        return None
    rel, watch, log = found
    return _row(rel, watch, log), rel.report_json, rel.diff_json
