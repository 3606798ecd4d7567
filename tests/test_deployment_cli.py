"""``nospy check --inventory/--zones/--infrastructure`` and ``nospy deployment report``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nospy.cli import run


def _args(examples: Path) -> list[str]:
    return [
        str(examples / "agreement.yaml"),
        "--inventory",
        str(examples / "devices.csv"),
        "--zones",
        str(examples / "zones.yaml"),
        "--infrastructure",
        str(examples / "plan.json"),
    ]


def test_check_with_deployment_evidence(examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["check", *_args(examples), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    verdicts = {v["clause"]: v for v in report["verdicts"]}
    assert verdicts["placement"]["status"] == "fail"
    assert verdicts["placement"]["checked_by"] == ["inventory:devices.csv"]
    assert verdicts["data"]["status"] == "fail"
    assert verdicts["data"]["checked_by"] == ["infrastructure:plan.json"]
    assert verdicts["accounts"]["status"] == "not-checked"  # no firmware given
    rules = sorted(f["rule"] for f in report["findings"])
    assert rules == ["data.residency"] * 6 + ["placement.share", "placement.site", "placement.zone", "placement.zone"]
    kinds = {s["kind"] for s in report["sources"]}
    assert kinds == {"inventory", "terraform-plan"}
    assert report["inventory"]["infrastructure:plan.json"]["terraform"] == "plan"


def test_compliant_deployment_passes(tmp_path: Path, examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "inv.csv").write_text(
        "Name,Manufacturer,Role,Site\nr1,ACME,access,s1\nr2,Nokia,access,s1\nr3,Nokia,access,s1\n"
    )
    state = {
        "format_version": "1.0",
        "values": {
            "root_module": {
                "resources": [
                    {
                        "address": "aws_s3_bucket.b",
                        "mode": "managed",
                        "type": "aws_s3_bucket",
                        "name": "b",
                        "provider_name": "registry.terraform.io/hashicorp/aws",
                        "values": {"bucket": "b", "region": "ap-south-1"},
                    }
                ]
            }
        },
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    agreement = tmp_path / "a.yaml"
    agreement.write_text(
        "nospy: 1\nid: a\ntitle: t\nvendor: ACME Networks\ncustomer: c\ndata: {countries: [IN]}\n"
        "placement: {zones: [access], max_share_percent: 35}\n"
    )
    args = [str(agreement), "--inventory", str(tmp_path / "inv.csv"), "--infrastructure", str(tmp_path / "state.json")]
    assert run(["check", *args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {v["clause"]: v["status"] for v in report["verdicts"]} == {
        "backdoors": "not-checked",
        "data": "pass",
        "placement": "pass",
    }
    assert run(["deployment", "report", *args]) == 0
    assert "nothing must move" in capsys.readouterr().out


def test_deployment_report_lists_what_must_move_where(examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["deployment", "report", *_args(examples), "--format", "json"]) == 1
    plan = json.loads(capsys.readouterr().out)
    moves = {(m["rule"], m["subject"]): m for m in plan["moves"]}
    core = moves[("placement.zone", "core-del-01")]
    assert core["now"] == "zone core" and core["allowed"] == ["access", "aggregation"]
    assert core["location"].endswith("devices.csv:4")
    bucket = moves[("data.residency", "aws_s3_bucket.customer_records")]
    assert bucket["now"] == "ap-southeast-1" and bucket["allowed"] == ["ap-south-1", "ap-south-2"]
    share = moves[("placement.share", "1 of 4 devices in zone access")]
    assert "replace at least 1" in share["action"]
    assert ("placement.site", "acc-tn-0001") in moves
    assert plan["zones"]["access"] == {"devices": 10, "vendor_devices": 4, "vendor_share_percent": 40.0}
    assert plan["clauses"] == {"placement": "fail", "data": "fail"}
    assert run(["deployment", "report", *_args(examples)]) == 1
    text = capsys.readouterr().out
    assert "data stored outside the agreed countries (6)" in text and "core-del-01" in text


def test_unreadable_evidence(tmp_path: Path, examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agreement = str(examples / "agreement.yaml")
    assert run(["check", agreement, "--zones", str(examples / "zones.yaml")]) == 2  # zones need an inventory
    assert run(["deployment", "report", agreement]) == 2  # no evidence at all
    (tmp_path / "bad.json").write_text('{"format_version": "9.0"}')
    assert run(["check", agreement, "--infrastructure", str(tmp_path / "bad.json"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "not supported" in report["errors"][0]["message"]
    assert {v["clause"]: v["status"] for v in report["verdicts"]}["data"] == "not-checked"  # never a pass
    assert run(["deployment", "report", agreement, "--infrastructure", str(tmp_path / "bad.json")]) == 2
    assert "could not be read" in capsys.readouterr().out
    (tmp_path / "empty.csv").write_text("Name,Manufacturer\n")
    assert run(["check", agreement, "--inventory", str(tmp_path / "empty.csv"), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {v["clause"]: v["status"] for v in report["verdicts"]}["placement"] == "not-checked"
    assert "no device could be read" in report["errors"][0]["message"]


def test_report_says_when_the_agreement_has_no_such_clause(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agreement = tmp_path / "a.yaml"
    agreement.write_text("nospy: 1\nid: a\ntitle: t\nvendor: ACME\ncustomer: c\n")
    (tmp_path / "inv.csv").write_text("Name,Manufacturer,Role\nr1,ACME,core\n")
    assert run(["deployment", "report", str(agreement), "--inventory", str(tmp_path / "inv.csv")]) == 2
    out = capsys.readouterr().out
    assert "placement: not in the agreement" in out and "nothing was checked" in out


def test_a_missing_inventory_file_means_placement_is_not_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agreement = tmp_path / "a.yaml"
    agreement.write_text("nospy: 1\nid: a\ntitle: t\nvendor: ACME\ncustomer: c\nplacement: {zones: [access]}\n")
    (tmp_path / "inv.csv").write_text("Name,Manufacturer,Role\nr1,ACME,access\n")
    args = [str(agreement), "--inventory", str(tmp_path / "inv.csv"), "--inventory", str(tmp_path / "gone.csv")]
    assert run(["check", *args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {v["clause"]: v["status"] for v in report["verdicts"]}["placement"] == "not-checked"
    assert report["errors"][0]["location"].endswith("gone.csv")
    assert "a whole inventory file could not be read" in report["errors"][1]["message"]
