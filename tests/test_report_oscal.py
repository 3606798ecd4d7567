"""OSCAL assessment results: valid for compliance-trestle's OSCAL models; one finding per clause."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from trestle.oscal.assessment_results import AssessmentResults

from nospy.report import oscal
from report_samples import empty_report, full_report

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _validated(doc: dict[str, object]) -> AssessmentResults:
    return AssessmentResults.model_validate(doc["assessment-results"])


def test_full_report_is_valid_oscal_with_a_finding_per_clause() -> None:
    report = full_report()
    doc = oscal.to_oscal(report, NOW)
    model = _validated(doc)
    result = model.results[0]
    assert result.findings is not None and result.observations is not None
    states = {f.target.target_id: (f.target.status.state.value if f.target.status else None) for f in result.findings}
    assert states == {
        "nospy-backdoors": "not-satisfied",
        "nospy-accounts": "satisfied",
        "nospy-services": "not-satisfied",
        "nospy-endpoints": "not-satisfied",
        "nospy-data": "not-satisfied",
        "nospy-keys": "not-satisfied",
        "nospy-placement": "not-satisfied",
        "nospy-software": "not-satisfied",
    }
    raw = doc["assessment-results"]["results"][0]
    software = next(f for f in raw["findings"] if f["target"]["target-id"] == "nospy-software")
    assert software["target"]["status"]["reason"] == "not-checked"
    # every finding observation plus one for the clause that passed
    assert len(result.observations) == len(report.findings) + 1
    obs = {o["uuid"]: o for o in raw["observations"]}
    services = next(f for f in raw["findings"] if f["target"]["target-id"] == "nospy-services")
    linked = [obs[r["observation-uuid"]] for r in services["related-observations"]]
    assert {o["title"] for o in linked} == {"service.undeclared"}
    evidence = linked[0]["relevant-evidence"][0]
    assert "image.bin!uimage@0x40!squashfs@0x0!/etc/init.d/S50diag" in evidence["description"]
    assert json.loads(evidence["remarks"])["program"] == "telnetd"


def test_agreement_travels_in_back_matter() -> None:
    report = full_report()
    doc = oscal.to_oscal(report, NOW)["assessment-results"]
    resource = doc["back-matter"]["resources"][0]
    assert doc["import-ap"]["href"] == f"#{resource['uuid']}"
    assert report.agreement is not None
    assert base64.b64decode(resource["base64"]["value"]).decode() == report.agreement.canonical_json


def test_same_report_same_document() -> None:
    assert oscal.render(full_report(), NOW) == oscal.render(full_report(), NOW)
    empty = oscal.to_oscal(empty_report(), NOW)
    assert all(
        f["target"]["status"]
        == {"state": "not-satisfied", "reason": "not-checked", "remarks": "no evidence given tests this clause"}
        for f in _validated(empty).model_dump(by_alias=True, mode="json")["results"][0]["findings"]
    )
