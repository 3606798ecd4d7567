"""Report renderers. Each takes a `nospy.findings.Report` and returns text; the CLI writes it."""

from __future__ import annotations

from nospy._report_format import Format
from nospy.findings import Report
from nospy.report import html, json_report, oscal, sarif, table

__all__ = ["Format", "render"]


def render(report: Report, fmt: Format) -> str:
    match fmt:
        case Format.TABLE:
            return table.render(report)
        case Format.JSON:
            return json_report.render(report)
        case Format.HTML:
            return html.render(report)
        case Format.SARIF:
            return sarif.render(report)
        case Format.OSCAL:
            return oscal.render(report)
