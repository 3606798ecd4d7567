"""OSCAL assessment results (NIST OSCAL 1.1.2, the ``assessment-results`` model, JSON format).

Mapping from a nospy report:

- one ``result`` for the check; its ``reviewed-controls`` are the agreement's clauses (OSCAL needs a
  control selection; nospy's controls are the clauses, named in the result's props);
- one ``observation`` per finding (method ``TEST``; the finding's path, container chain, line and
  evidence in ``relevant-evidence``) and one per clause that a source tested without finding
  anything, so every satisfied clause has evidence behind it;
- one OSCAL ``finding`` per clause, targeting the objective ``nospy-<clause>``: ``satisfied`` when
  the verdict is pass, ``not-satisfied`` when it fails, and ``not-satisfied`` with reason
  ``not-checked`` when no evidence tested it (OSCAL has no third state; a clause nobody checked is
  never reported as satisfied);
- the agreement's canonical JSON is a back-matter resource (base64), and ``import-ap`` points at it:
  the agreement is the plan the equipment was assessed against.

nospy's own property names live in the ``NS`` namespace, as OSCAL asks of extensions. UUIDs are
version 5, derived from the report's content, so the same report gives the same identifiers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from nospy.findings import Finding, Report, Severity, Status

__all__ = ["NS", "OSCAL_VERSION", "render", "to_oscal"]

OSCAL_VERSION = "1.1.2"
NS = "urn:nospy:oscal"


def _prop(name: str, value: object) -> dict[str, str]:
    return {"name": name, "ns": NS, "value": str(value)}


def _where(f: Finding) -> str:
    parts = []
    if f.path:
        parts.append(f"path {f.path}" + (f" line {f.line}" if f.line is not None else ""))
    if f.location:
        parts.append(f"location {f.location}")
    if f.offset is not None:
        parts.append(f"offset {f.offset:#x}")
    return "; ".join(parts) or "no location"


def to_oscal(report: Report, now: datetime | None = None) -> dict[str, Any]:
    when = (now or datetime.now(UTC)).isoformat()
    seed = uuid.UUID(bytes=hashlib.sha256(report.model_dump_json().encode()).digest()[:16])

    def uid(name: str) -> str:
        return str(uuid.uuid5(seed, name))

    observations: list[dict[str, Any]] = []
    by_clause: dict[str, list[str]] = {}
    for i, f in enumerate(report.findings):
        evidence: dict[str, Any] = {
            "description": _where(f),
            "props": [_prop("rule", f.rule), _prop("severity", f.severity.value)],
        }
        if f.evidence:
            evidence["remarks"] = json.dumps(f.evidence, sort_keys=True, ensure_ascii=False)
        obs: dict[str, Any] = {
            "uuid": uid(f"observation/{i}"),
            "title": f.rule,
            "description": f.message,
            "props": [_prop("clause", f.clause.value), _prop("severity", f.severity.value)],
            "methods": ["TEST"],
            "types": ["finding" if f.severity is not Severity.INFO else "control-objective"],
            "relevant-evidence": [evidence],
            "collected": when,
        }
        observations.append(obs)
        if f.severity is not Severity.INFO:
            by_clause.setdefault(f.clause.value, []).append(obs["uuid"])

    findings: list[dict[str, Any]] = []
    for v in report.verdicts:
        clause = v.clause.value
        related = list(by_clause.get(clause, []))
        if v.status is Status.PASS:
            obs_id = uid(f"tested/{clause}")
            observations.append(
                {
                    "uuid": obs_id,
                    "title": f"{clause}: nothing against the clause",
                    "description": f"Tested by {', '.join(v.checked_by)}; no finding against the {clause} clause.",
                    "props": [_prop("clause", clause)],
                    "methods": ["TEST"],
                    "types": ["control-objective"],
                    "relevant-evidence": [{"description": source} for source in v.checked_by],
                    "collected": when,
                }
            )
            related.append(obs_id)
        status: dict[str, str] = {"state": "satisfied" if v.status is Status.PASS else "not-satisfied"}
        if v.status is Status.NOT_CHECKED:
            status["reason"] = "not-checked"
            status["remarks"] = v.reason or "no evidence given tests this clause"
        finding: dict[str, Any] = {
            "uuid": uid(f"finding/{clause}"),
            "title": f"clause {clause}: {v.status.value}",
            "description": (
                f"{len(v.findings)} finding(s) against the {clause} clause."
                if v.status is Status.FAIL
                else f"The {clause} clause is {v.status.value}."
            ),
            "props": [_prop("clause", clause), _prop("verdict", v.status.value)],
            "target": {"type": "objective-id", "target-id": f"nospy-{clause}", "status": status},
        }
        if related:
            finding["related-observations"] = [{"observation-uuid": o} for o in related]
        findings.append(finding)

    resources: list[dict[str, Any]] = []
    title = f"nospy check of {report.target.path}"
    description = "Findings of nospy against a no-spy, no-backdoor agreement."
    result_props = [_prop("target", report.target.path)]
    if report.agreement:
        a = report.agreement
        title = f"nospy check: {a.title or a.id}"
        result_props += [_prop("agreement-id", a.id), _prop("agreement-sha256", a.sha256)]
        result_props += [_prop("signed-by", s) for s in a.signed_by]
        resource: dict[str, Any] = {
            "uuid": uid("agreement"),
            "title": f"Agreement {a.id}",
            "description": "The agreement's canonical JSON (RFC 8785), the text its parties signed.",
            "props": [_prop("sha256", a.sha256)],
        }
        if a.canonical_json:
            resource["base64"] = {
                "filename": f"{a.id}.json",
                "media-type": "application/json",
                "value": base64.b64encode(a.canonical_json.encode()).decode(),
            }
        resources.append(resource)
    for n, s in enumerate(report.sources):
        src: dict[str, Any] = {
            "uuid": uid(f"source/{n}"),
            "title": f"{s.kind}: {s.path}",
            "props": [_prop("kind", s.kind)],
        }
        if s.sha256:
            src["props"].append(_prop("sha256", s.sha256))
        resources.append(src)

    result: dict[str, Any] = {
        "uuid": uid("result"),
        "title": title,
        "description": description,
        "start": when,
        "end": when,
        "props": result_props + [_prop("clause", v.clause.value) for v in report.verdicts],
        "reviewed-controls": {
            "description": "The clauses of the agreement.",
            "control-selections": [{"include-all": {}}],
        },
    }
    if observations:
        result["observations"] = observations
    if findings:
        result["findings"] = findings
    if report.errors:
        result["remarks"] = "Could not be read: " + "; ".join(f"{e.source}: {e.message}" for e in report.errors)
    doc: dict[str, Any] = {
        "uuid": uid("assessment-results"),
        "metadata": {
            "title": title,
            "last-modified": when,
            "version": report.tool.version,
            "oscal-version": OSCAL_VERSION,
            "props": [_prop("tool", f"{report.tool.name} {report.tool.version}")],
        },
        "import-ap": {
            "href": f"#{resources[0]['uuid']}" if report.agreement else "#",
            "remarks": "The agreement is the plan this equipment was assessed against (see back-matter).",
        },
        "results": [result],
    }
    if resources:
        doc["back-matter"] = {"resources": resources}
    return {"assessment-results": doc}


def render(report: Report, now: datetime | None = None) -> str:
    return json.dumps(to_oscal(report, now), indent=2, ensure_ascii=False) + "\n"
