"""Report renderers. Each takes a `nospy.findings.Report` and returns text; the CLI writes it."""

from __future__ import annotations

from enum import StrEnum

from nospy.findings import Report
from nospy.report import json_report, table

__all__ = ["Format", "render"]


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


def render(report: Report, fmt: Format) -> str:
    match fmt:
        case Format.TABLE:
            return table.render(report)
        case Format.JSON:
            return json_report.render(report)
