from __future__ import annotations

import re
from pathlib import Path

import pytest

from nospy.agreement.load import parse_yaml
from nospy.agreement.schema import Agreement, Clause
from nospy.errors import InputError
from nospy.findings import RULES, Finding, Severity, Source, Status, Target, rule
from nospy.verify import Progress, SourceResult, check


def test_rules_match_the_binding_table_in_design(shared: Path) -> None:
    design = (shared / "DESIGN.md").read_text()
    table = dict(re.findall(r"^\| `([a-z.-]+)` \| (critical|high|medium|low) \|", design, re.M))
    assert len(table) == 19
    declared = {rid: r.severity.value for rid, r in RULES.items() if not rid.startswith("inventory.")}
    assert declared == table


def test_undeclared_rule_is_refused() -> None:
    with pytest.raises(KeyError, match="undeclared rule"):
        rule("backdoor.unknown")
    f = Finding.of("service.undeclared", "telnetd on 23", path="/etc/init.d/S50diag", line=12)
    assert (f.severity, f.clause) == (Severity.HIGH, Clause.SERVICES)


AGREEMENT = "nospy: 1\nid: t\ntitle: T\nvendor: V\ncustomer: C\nservices: []\ndata:\n  countries: [IN]\n"


class _Source:
    """A recorded source result (the interface under test is verify.check, not a source)."""

    def __init__(self, label: str, result: SourceResult | Exception) -> None:
        self._label, self._result = label, result

    @property
    def label(self) -> str:
        return self._label

    def collect(self, agreement: Agreement | None, progress: Progress) -> SourceResult:
        if isinstance(self._result, Exception):
            raise self._result
        return self._result


def test_verdicts_pass_fail_not_checked() -> None:
    agreement = parse_yaml(AGREEMENT)
    fw = SourceResult(
        source=Source(kind="firmware", path="img.bin"),
        checked={Clause.BACKDOORS, Clause.SERVICES, Clause.ACCOUNTS},
        findings=[
            Finding.of("inventory.service", "dropbear on 22"),
            Finding.of("service.undeclared", "telnetd on 23", path="/etc/inittab", line=3),
        ],
    )
    broken = _Source("traffic:bad.pcap", InputError("bad.pcap: truncated"))
    report = check(agreement, [_Source("firmware:img.bin", fw), broken], Target(path="a.yaml"))
    status = {v.clause: v.status for v in report.verdicts}
    assert status == {Clause.BACKDOORS: Status.PASS, Clause.SERVICES: Status.FAIL, Clause.DATA: Status.NOT_CHECKED}
    services = next(v for v in report.verdicts if v.clause is Clause.SERVICES)
    assert [report.findings[i].rule for i in services.findings] == ["service.undeclared"]
    assert report.failed
    assert [e.source for e in report.errors] == ["traffic:bad.pcap"]
    assert report.agreement is not None and len(report.agreement.sha256) == 64


def test_info_findings_do_not_fail() -> None:
    agreement = parse_yaml(AGREEMENT)
    fw = SourceResult(
        source=Source(kind="firmware", path="i"),
        checked={Clause.SERVICES},
        findings=[Finding.of("inventory.service", "ssh")],
    )
    report = check(agreement, [_Source("fw", fw)], Target(path="a"))
    assert not report.failed
