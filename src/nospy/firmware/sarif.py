"""SARIF 2.1.0 output of a scan (OASIS SARIF v2.1.0), for code-scanning dashboards and CI annotations.

One run; the rules are the binding rule table; each finding is a result at its device path and line,
with nospy's severity kept as a property (SARIF levels are coarser: critical and high are ``error``).
"""

from __future__ import annotations

import json
from typing import Any

from nospy import __version__
from nospy.findings import RULES, Report, Severity

__all__ = ["render_sarif"]

SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}


def render_sarif(report: Report) -> str:
    rules = sorted(RULES.values(), key=lambda r: r.id)
    index = {r.id: i for i, r in enumerate(rules)}
    results: list[dict[str, Any]] = []
    for f in report.findings:
        if f.severity is Severity.INFO:
            continue
        region: dict[str, Any] = {}
        if f.line:
            region["startLine"] = f.line
        if f.offset is not None:
            region["byteOffset"] = f.offset
        physical: dict[str, Any] = {"artifactLocation": {"uri": (f.path or "").lstrip("/") or "."}}
        if region:
            physical["region"] = region
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": _LEVEL[f.severity],
                "message": {"text": f.message},
                "locations": [{"physicalLocation": physical}],
                "properties": {
                    "severity": f.severity.value,
                    "clause": f.clause.value,
                    "location": f.location,
                    "evidence": f.evidence,
                },
            }
        )
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "nospy",
                        "version": __version__,
                        "rules": [
                            {
                                "id": r.id,
                                "shortDescription": {"text": r.summary},
                                "properties": {"severity": r.severity.value, "clause": r.clause.value},
                                "defaultConfiguration": {"level": _LEVEL[r.severity]},
                            }
                            for r in rules
                        ],
                    }
                },
                "originalUriBaseIds": {"ROOTFS": {"uri": "file:///"}},
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": not report.errors,
                        "toolExecutionNotifications": [
                            {"level": "warning", "message": {"text": f"{e.location or e.source}: {e.message}"}}
                            for e in report.errors
                        ],
                    }
                ],
            }
        ],
    }
    return json.dumps(log, indent=2) + "\n"
