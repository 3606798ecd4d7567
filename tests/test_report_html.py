"""The HTML report: self-contained, escaped, verdicts first, evidence and charts from the report."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nospy.cli import run
from nospy.report import Format, html, render
from report_samples import HOSTILE, empty_report, full_report


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.ids += [v for k, v in attrs if k == "id" and v]


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    return p


def test_self_contained_no_network() -> None:
    text = render(full_report(), Format.HTML)
    parsed = _parse(text)
    tags = {t for t, _ in parsed.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    for _, attrs in parsed.tags:
        assert "src" not in attrs
        assert str(attrs.get("href", "#")).startswith("#")  # links only within the page
    # the only absolute URL is the SVG namespace, which is a name, not a fetch
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}
    assert "@import" not in text and "url(" not in text


def test_untrusted_text_is_escaped() -> None:
    text = render(full_report(), Format.HTML)
    assert HOSTILE not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text


def test_verdicts_first_then_findings_grouped_by_clause_with_evidence() -> None:
    report = full_report()
    text = html.render(report)
    ids = _parse(text).ids
    assert ids.index("verdicts") < ids.index("charts") < ids.index("findings") < ids.index("agreement")
    for v in report.verdicts:
        row = re.search(rf'<tr id="verdict-{v.clause.value}">.*?</tr>', text, re.S)
        assert row is not None and f'class="status {v.status.value}"' in row.group(0)
    statuses = {v.clause.value: v.status.value for v in report.verdicts}
    assert statuses == {
        "backdoors": "fail",
        "accounts": "pass",
        "services": "fail",
        "endpoints": "fail",
        "data": "fail",
        "keys": "fail",
        "placement": "fail",
        "software": "not-checked",
    }
    services = text[text.index('id="clause-services"') : text.index('id="clause-endpoints"')]
    assert "image.bin!uimage@0x40!squashfs@0x0!/etc/init.d/S50diag" in services
    assert "/etc/init.d/S50diag:12" in services and "telnetd -p 23 -l /bin/login" in services
    data = text[text.index('id="clause-data"') : text.index('id="clause-keys"')]
    assert "<th>dst</th>" in data and "198.51.100.7" in data and "912345" in data  # flows as a table
    placement = text[text.index('id="clause-placement"') : text.index('id="clause-software"')]
    assert "agg-07" in placement and "core-01" in placement
    # info entries are kept but folded away
    accounts = text[text.index('id="clause-accounts"') : text.index('id="clause-services"')]
    assert "<details><summary>1 inventory entries (info)</summary>" in accounts
    assert "bad CRC" in text and "jffs2@0x80000" in text
    # each source's facts, folded away: components, egress, shares
    facts = text[text.index('id="sources"') : text.index('id="agreement"')]
    assert "<summary>what firmware:image.bin saw</summary>" in facts and "busybox" in facts
    assert "<th>aggregation</th>" in facts and "52000000" in facts


def test_charts_from_what_the_report_has() -> None:
    full = html.charts(full_report())
    assert [c.id for c in full] == ["severity", "egress", "share"]
    egress = {b.label: b.text for b in full[1].bars}
    assert egress == {"IN": "49.6 MiB", "SG": "892.1 KiB", "US": "3.9 KiB"}
    share = full[2]
    assert share.limit == 35 and {b.label: b.text for b in share.bars} == {"access": "30.0%", "aggregation": "41.0%"}
    text = html.render(full_report())
    for chart in ("severity", "egress", "share"):
        assert f'id="chart-{chart}"' in text
    assert "max 35%" in text
    empty = html.render(empty_report())
    assert 'id="chart-severity"' in empty and 'id="chart-egress"' not in empty and 'id="chart-share"' not in empty


def test_malformed_inventory_is_ignored_by_charts() -> None:
    report = full_report().model_copy(
        update={"inventory": {"x": {"egress_by_country": {"IN": "lots", "SG": -5}, "share_by_zone": {"a": 3}}, "y": 7}}
    )
    assert [c.id for c in html.charts(report)] == ["severity"]


def test_agreement_and_signatures_shown() -> None:
    text = html.render(full_report())
    assert "acme.example+1234abcd" in text and "No-backdoor agreement for ACME RX200 access routers" in text
    assert "&#34;max_share_percent&#34;: 35" in text  # the canonical JSON, escaped
    empty = html.render(empty_report())
    assert "not verified" in empty and "0 pass, 8 not checked" in empty


def test_check_command_writes_every_format(tmp_path: Path, examples: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agreement = str(examples / "agreement.yaml")
    out = tmp_path / "report.html"
    assert run(["check", agreement, "--format", "html", "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert run(["check", agreement, "--format", "sarif"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "2.1.0"
    assert run(["check", agreement, "--format", "oscal"]) == 0
    assert "assessment-results" in json.loads(capsys.readouterr().out)


def test_demo_ends_with_the_html_report(tmp_path: Path, examples: Path) -> None:
    from nospy.demo import run_demo

    result = run_demo(tmp_path / "out", examples)
    assert result.ok and result.report == tmp_path / "out" / "report.html"
    text = result.report.read_text()
    assert 'id="verdict-placement"' in text and "acme.example+" in text and "bharat-telecom.example+" in text
    assert result.steps[-1].endswith(f"HTML report: {result.report}")
