"""The JSON report of DESIGN.md: stable field names; fields may be added, none renamed."""

from __future__ import annotations

from nospy.findings import Report


def render(report: Report) -> str:
    return report.model_dump_json(indent=2, exclude_none=True) + "\n"
