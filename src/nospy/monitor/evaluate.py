"""Checking one release against the agreement, and what changed since the product's previous release.

`check_release` is the one place a release is checked: the image as firmware evidence and the log as
the evidence that it was released (``software`` clause), through `nospy.evidence.build_sources` and
`nospy.verify.check`, exactly as ``nospy check --firmware IMAGE --log LOG`` does.

`compare` turns two reports into the change an alert carries (an image of a release that ships
several is compared with all the images of the previous release, see `compare`): every clause whose
status moved, the clauses that fail now and did not before (on a product's first release, every failing clause), the
findings that are new (by rule, device path and message, as `nospy.firmware.diff` matches them) with
their evidence, and the firmware diff (files, accounts, services, components) when both images are at
hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nospy.agreement import Agreement
from nospy.errors import InputError
from nospy.evidence import SourceOptions, build_sources
from nospy.findings import Finding, Report, Severity, Status, Target, worst_verdicts
from nospy.firmware.cache import ContentCache
from nospy.firmware.diff import DiffResult, diff_reports
from nospy.keys import VerifierKey
from nospy.verify import Progress, check

__all__ = ["ClauseChange", "ReleaseChange", "check_release", "compare"]


def check_release(
    agreement: Agreement,
    image: Path,
    *,
    log: str,
    log_key: VerifierKey,
    target: Target,
    signed_by: Sequence[str] = (),
    progress: Progress = lambda _: None,
    cache: ContentCache | None = None,
) -> Report:
    """The report of ``image`` (firmware evidence) and its release in ``log`` against ``agreement``.

    With a content ``cache``, files the product's earlier releases already had are not analysed again.
    """
    sources = build_sources({"firmware": [image]}, SourceOptions(log=log, log_key=log_key, cache=cache))
    return check(agreement, sources, target, signed_by, progress)


class ClauseChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clause: str
    before: Status | None = Field(description="The status in the previous release; None on the first release.")
    after: Status


class ReleaseChange(BaseModel):
    """What an alert carries about a release: clause transitions and new findings, with evidence."""

    model_config = ConfigDict(extra="forbid")
    first_release: bool = Field(description="No earlier release of the product was checked.")
    clauses: list[ClauseChange] = Field(description="Every clause whose status differs from the previous release.")
    new_failing: list[str] = Field(description="Clauses that fail now and did not before.")
    new_findings: list[Finding] = Field(description="Findings (not info) the previous release did not have.")
    gone_findings: list[Finding] = Field(description="Findings (not info) of the previous release that are gone.")
    firmware: DiffResult | None = Field(
        description="Files, inventory and findings between the two images; None when there is no previous image."
    )
    firmware_problem: str | None = Field(None, description="Why the firmware diff is missing, if it is.")


def _key(f: Finding) -> tuple[str, str | None, str]:
    return (f.rule, f.path, f.message)


def _failing(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.severity is not Severity.INFO]


def compare(
    before: Report | None,
    after: Report,
    *,
    old_image: Path | None = None,
    new_image: Path | None = None,
    old_problem: str | None = None,
    others: Sequence[Report] = (),
) -> ReleaseChange:
    """The change from ``before`` (the product's previous release, or None) to ``after``.

    ``others``: the previous release's other images, when it shipped several. A clause then failed
    before if it failed in any of them, and a finding is new if none of them had it: which image
    is which is not said by the release, so no order of images can make a failure look new or old.
    ``before`` is the one image the firmware diff is taken against.
    """
    earlier = [*([before] if before is not None else []), *others]
    old = worst_verdicts({v.clause.value: v.status for v in r.verdicts} for r in earlier)
    changes = [
        ClauseChange(clause=v.clause.value, before=old.get(v.clause.value), after=v.status)
        for v in after.verdicts
        if not earlier or old.get(v.clause.value) != v.status
    ]
    new_failing = [c.clause for c in changes if c.after is Status.FAIL and c.before is not Status.FAIL]
    seen = {_key(f) for report in earlier for f in _failing(report)}
    now = {_key(f) for f in _failing(after)}
    firmware: DiffResult | None = None
    problem = old_problem
    if before is not None and old_image is not None and new_image is not None:
        try:
            firmware = diff_reports(old_image, new_image, before, after)
        except InputError as exc:
            problem = f"firmware diff: {exc}"
    elif before is not None and problem is None:
        problem = "the previous release's image is not in the image store"
    elif before is None and others:
        problem = "the previous release has no image of this name or in this place to diff against"
    return ReleaseChange(
        first_release=not earlier,
        clauses=changes,
        new_failing=new_failing,
        new_findings=[f for f in _failing(after) if _key(f) not in seen],
        gone_findings=[f for f in _failing(before) if _key(f) not in now] if before is not None else [],
        firmware=firmware,
        firmware_problem=problem,
    )
