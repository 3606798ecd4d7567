"""Clause evaluation: from the evidence sources' findings to one verdict per clause.

A clause passes only when some source tested it and found nothing against it; a clause no source
tested is not-checked, never a pass. Findings of severity info are inventory and fail nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from nospy.agreement import Agreement, canonical_json
from nospy.agreement.schema import Clause
from nospy.errors import NospyError
from nospy.findings import AgreementRef, ErrorEntry, Finding, Report, Severity, Source, Status, Target, Verdict

__all__ = ["EvidenceSource", "Progress", "SourceResult", "check", "verdicts"]

Progress = Callable[[str], None]


class SourceResult(BaseModel):
    """What one evidence source found."""

    model_config = ConfigDict(extra="forbid")
    source: Source
    checked: set[Clause] = Field(description="Clauses this source tested (with or without findings).")
    findings: list[Finding] = Field(default_factory=list)
    errors: list[ErrorEntry] = Field(default_factory=list)
    inventory: dict[str, object] = Field(default_factory=dict)


class EvidenceSource(Protocol):
    """One kind of evidence (firmware image, traffic capture, inventory, log): the plug-in interface."""

    @property
    def label(self) -> str:
        """A short name for progress and error messages, e.g. ``firmware:image.bin``."""
        ...

    def collect(self, agreement: Agreement | None, progress: Progress) -> SourceResult:
        """Read the evidence and test it against ``agreement`` (``None``: rules needing no declaration)."""
        ...


def verdicts(clauses: Iterable[Clause], findings: Sequence[Finding], checked: dict[Clause, list[str]]) -> list[Verdict]:
    out = []
    for clause in clauses:
        failing = [i for i, f in enumerate(findings) if f.clause is clause and f.severity is not Severity.INFO]
        by = checked.get(clause, [])
        if failing:
            out.append(Verdict(clause=clause, status=Status.FAIL, findings=failing, checked_by=by))
        elif by:
            out.append(Verdict(clause=clause, status=Status.PASS, checked_by=by))
        else:
            out.append(Verdict(clause=clause, status=Status.NOT_CHECKED, reason="no evidence given tests this clause"))
    return out


def check(
    agreement: Agreement,
    sources: Sequence[EvidenceSource],
    target: Target,
    signed_by: Sequence[str] = (),
    progress: Progress = lambda _: None,
) -> Report:
    """Collect every source and evaluate every clause of ``agreement``.

    A source that fails with a `NospyError` becomes an error entry; the other sources still run.
    """
    findings: list[Finding] = []
    errors: list[ErrorEntry] = []
    used: list[Source] = []
    inventory: dict[str, object] = {}
    checked: dict[Clause, list[str]] = {}
    for src in sources:
        progress(f"reading {src.label}")
        try:
            result = src.collect(agreement, progress)
        except NospyError as exc:
            errors.append(ErrorEntry(source=src.label, message=str(exc)))
            continue
        used.append(result.source)
        findings.extend(result.findings)
        errors.extend(result.errors)
        inventory[src.label] = result.inventory
        for clause in result.checked:
            checked.setdefault(clause, []).append(src.label)
    canonical = canonical_json(agreement)
    ref = AgreementRef(
        id=agreement.id,
        sha256=hashlib.sha256(canonical).hexdigest(),
        signed_by=list(signed_by),
        title=agreement.title,
        vendor=agreement.vendor,
        customer=agreement.customer,
        canonical_json=canonical.decode(),
    )
    return Report(
        target=target,
        agreement=ref,
        sources=used,
        findings=findings,
        verdicts=verdicts(agreement.clauses(), findings, checked),
        errors=errors,
        inventory=inventory,
    )
