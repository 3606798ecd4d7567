"""SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format, errata 01) for code-scanning tools.

One run; the driver's rules are nospy's binding rule table (`nospy.findings.RULES`) so that rule ids
and indexes are stable across reports. Mapping:

- severity to ``level``: critical and high are ``error``, medium ``warning``, low ``note``, info
  ``none`` (inventory, not a problem); ``properties.security-severity`` carries a CVSS-like number
  that code-scanning UIs sort by;
- a finding's device ``path`` becomes an artifact location relative to the ``DEVICEROOT`` base
  (the root file system of the device), its ``line`` a region, its ``offset`` a byte offset; its
  ``location`` (container chain, row, flow) a logical location; its evidence goes in ``properties``;
- verdicts per clause and the agreement go in the run's ``properties``; unreadable inputs become
  tool execution notifications (SARIF §3.58), with ``executionSuccessful`` still true: one bad input
  does not stop a check.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from nospy.findings import RULES, Finding, Report, Severity

__all__ = ["SCHEMA_URI", "render", "to_sarif"]

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "none",
}
# GitHub code scanning reads properties.security-severity (a CVSS-style score) to rank results.
_SCORE = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "name": r.id.replace(".", "-"),
            "shortDescription": {"text": r.summary},
            "defaultConfiguration": {"level": _LEVEL[r.severity]},
            "properties": {
                "clause": r.clause.value,
                "severity": r.severity.value,
                "security-severity": _SCORE[r.severity],
                "needs_declaration": r.needs_declaration,
                "tags": ["security", f"clause:{r.clause.value}"],
            },
        }
        for r in RULES.values()
    ]


def _uri(device_path: str) -> str:
    # relative to DEVICEROOT; percent-encode everything that is not a plain path character so that
    # odd names from an untrusted image still make a valid URI reference
    return quote(device_path.lstrip("/"), safe="/-._~")


def _result(f: Finding, rule_index: dict[str, int]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.rule,
        "level": _LEVEL[f.severity],
        "kind": "informational" if f.severity is Severity.INFO else "fail",
        "message": {"text": f.message},
        "properties": {"clause": f.clause.value, "severity": f.severity.value},
    }
    if f.rule in rule_index:
        result["ruleIndex"] = rule_index[f.rule]
    # the same finding in the next release's report gets the same fingerprint, so that code-scanning
    # tools track it instead of opening a new alert; the line is left out because it moves
    identity = "\x00".join([f.rule, f.path or "", f.location or "", f.message])
    result["partialFingerprints"] = {"nospyFinding/v1": hashlib.sha256(identity.encode()).hexdigest()}
    location: dict[str, Any] = {}
    if f.path:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(f.path), "uriBaseId": "DEVICEROOT"}}
        region: dict[str, Any] = {}
        if f.line is not None and f.line >= 1:
            region["startLine"] = f.line
        if f.offset is not None and f.offset >= 0:
            region["byteOffset"] = f.offset
        if region:
            physical["region"] = region
        location["physicalLocation"] = physical
    if f.location:
        location["logicalLocations"] = [{"fullyQualifiedName": f.location, "kind": "resource"}]
    if location:
        result["locations"] = [location]
    if f.evidence:
        result["properties"]["evidence"] = f.evidence
    return result


def to_sarif(report: Report) -> dict[str, Any]:
    rules = _rules()
    rule_index = {r["id"]: i for i, r in enumerate(rules)}
    run_properties: dict[str, Any] = {
        "verdicts": [v.model_dump(mode="json", exclude_none=True) for v in report.verdicts],
        "target": report.target.model_dump(mode="json", exclude_none=True),
    }
    if report.agreement:
        run_properties["agreement"] = report.agreement.model_dump(
            mode="json", exclude_none=True, exclude={"canonical_json"}
        )
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": report.tool.name,
                "version": report.tool.version,
                "semanticVersion": report.tool.version,
                "rules": rules,
            }
        },
        "originalUriBaseIds": {
            "DEVICEROOT": {
                "uri": "file:///",
                "description": {"text": "The root file system of the device, as unpacked from the image."},
            }
        },
        "invocations": [
            {
                "executionSuccessful": True,
                "toolExecutionNotifications": [
                    {
                        "level": "warning",
                        "message": {"text": f"{e.source}{'!' + e.location if e.location else ''}: {e.message}"},
                        "descriptor": {"id": "input.unreadable"},
                    }
                    for e in report.errors
                ],
            }
        ],
        "artifacts": [
            {
                "location": {"uri": quote(s.path, safe="/-._~:")},
                "roles": ["analysisTarget"],
                "description": {"text": s.kind},
                **({"hashes": {"sha-256": s.sha256}} if s.sha256 else {}),
            }
            for s in report.sources
        ],
        "results": [_result(f, rule_index) for f in report.findings],
        "properties": run_properties,
    }
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render(report: Report) -> str:
    return json.dumps(to_sarif(report), indent=2, ensure_ascii=False) + "\n"
