"""The HTML report: one self-contained file that opens with no network (inline CSS, inline SVG).

Layout: the verdict per clause first, then charts, then findings grouped by clause with their
evidence, the inputs, errors, and the agreement the equipment was checked against with the keys that
signed it. Everything comes from the `Report`; nothing else is read.

Renderers stay generic over findings: a finding's ``evidence`` is shown whatever its shape (mappings
as key/value tables, lists of mappings such as flow records or inventory rows as tables with one
column per key). Charts are drawn from what the report holds:

- findings by severity: always;
- egress by country, from a traffic source's summary (`nospy.traffic.aggregate.Summary`):
  ``inventory[label]["by_country"] = [{"country": "IN", "bytes": n, ...}, ...]``; the sources'
  figures are added up;
- vendor share by zone, from an inventory source's placement summary (`nospy.deployment.placement`):
  ``inventory[label]["zones"] = {zone: {"devices": n, "vendor_devices": n, "vendor_share_percent": p}}``
  (the percentage is computed from the counts when missing); the agreement's
  ``placement.max_share_percent`` is drawn as a limit line.

Values of another shape are ignored by the charts (they still appear in the JSON report).
Jinja2 autoescapes everything the report contains: paths and messages come from untrusted images.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from nospy.findings import Finding, Report, Severity, Status

__all__ = ["Bar", "Chart", "charts", "render", "where_of"]

# Rows of a list shown in a finding's evidence before "N more": a capture can list thousands of flows.
MAX_EVIDENCE_ROWS = 200

_SEVERITY_COLOUR = {
    Severity.CRITICAL: "#8b0000",
    Severity.HIGH: "#d1342f",
    Severity.MEDIUM: "#e59400",
    Severity.LOW: "#3a7bd5",
    Severity.INFO: "#8a8f98",
}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    colour: str = "#3a7bd5"


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart; the template draws it as inline SVG."""

    id: str
    title: str
    bars: tuple[Bar, ...]
    unit: str = ""
    limit: float | None = None  # a vertical line, e.g. the agreement's maximum share
    limit_text: str = ""
    scale: float = 1.0  # the value drawn at full width

    def width(self, value: float, full: float = 420.0) -> float:
        if self.scale <= 0 or value <= 0:
            return 0.0
        # a sliver for small non-zero values, so that a few bytes to a foreign country still show
        return max(2.0, round(full * min(value, self.scale) / self.scale, 1))


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop always returns


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) and f >= 0 else None


def _severity_chart(report: Report) -> Chart:
    counts = Counter(f.severity for f in report.findings)
    bars = tuple(Bar(s.value, counts[s], str(counts[s]), _SEVERITY_COLOUR[s]) for s in Severity)
    return Chart("severity", "Findings by severity", bars, scale=max([1, *counts.values()]))


def _egress_chart(report: Report) -> Chart | None:
    total: Counter[str] = Counter()
    for facts in report.inventory.values():
        rows = facts.get("by_country") if isinstance(facts, dict) else None
        if not isinstance(rows, list):
            continue
        for row in rows:
            n = _number(row.get("bytes")) if isinstance(row, dict) else None
            if n is not None and isinstance(row.get("country"), str):
                total[row["country"]] += int(n)
    if not total:
        return None
    allowed = set(_allowed_countries(report))
    bars = tuple(
        Bar(
            country,
            n,
            _human_bytes(n),
            "#2e8b57" if not allowed or country in allowed else _SEVERITY_COLOUR[Severity.HIGH],
        )
        for country, n in total.most_common(20)
    )
    return Chart("egress", "Egress by country", bars, unit="bytes", scale=max(b.value for b in bars) or 1)


def _share_chart(report: Report) -> Chart | None:
    rows: dict[str, float] = {}
    for facts in report.inventory.values():
        by_zone = facts.get("zones") if isinstance(facts, dict) else None
        if not isinstance(by_zone, dict):
            continue
        for zone, entry in by_zone.items():
            if not isinstance(entry, dict):
                continue
            percent = _number(entry.get("vendor_share_percent"))
            vendor, total = _number(entry.get("vendor_devices")), _number(entry.get("devices"))
            if percent is None and vendor is not None and total:
                percent = 100.0 * vendor / total
            if percent is not None:
                rows[str(zone)] = min(percent, 100.0)
    if not rows:
        return None
    limit = _max_share(report)
    bars = tuple(
        Bar(
            zone,
            p,
            f"{p:.1f}%",
            _SEVERITY_COLOUR[Severity.HIGH] if limit is not None and p > limit else "#3a7bd5",
        )
        for zone, p in sorted(rows.items())
    )
    return Chart(
        "share",
        "Vendor share by zone",
        bars,
        unit="%",
        limit=limit,
        limit_text=f"max {limit:g}%" if limit is not None else "",
        scale=100.0,
    )


def _agreement_doc(report: Report) -> dict[str, Any]:
    if report.agreement is None or report.agreement.canonical_json is None:
        return {}
    try:
        doc = json.loads(report.agreement.canonical_json)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _allowed_countries(report: Report) -> list[str]:
    data = _agreement_doc(report).get("data")
    countries = data.get("countries") if isinstance(data, dict) else None
    return [str(c) for c in countries] if isinstance(countries, list) else []


def _max_share(report: Report) -> float | None:
    placement = _agreement_doc(report).get("placement")
    return _number(placement.get("max_share_percent")) if isinstance(placement, dict) else None


def charts(report: Report) -> list[Chart]:
    """The charts this report has data for, findings by severity first."""
    found = [_severity_chart(report), _egress_chart(report), _share_chart(report)]
    return [c for c in found if c is not None]


def _kind(value: Any) -> str:
    """How the template shows an evidence value."""
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            return "rows"
        return "list"
    return "scalar"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows[:MAX_EVIDENCE_ROWS]:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def _scalar(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def where_of(f: Finding) -> str:
    where = f.path or ""
    if f.line is not None:
        where += f":{f.line}"
    elif f.offset is not None:
        where += f"@{f.offset:#x}"
    return where


def template_environment(package: str) -> Environment:
    """The Jinja templates in ``package``'s ``templates`` folder, escaped and strict (an unknown name is
    an error, not an empty string): the report's and the web service's pages alike."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENV = template_environment("nospy.report")
_ENV.filters["kind"] = _kind
_ENV.filters["columns"] = _columns
_ENV.filters["scalar"] = _scalar
_ENV.filters["where"] = where_of


def render(report: Report) -> str:
    by_clause: dict[str, list[tuple[int, Finding]]] = {}
    for i, f in enumerate(report.findings):
        by_clause.setdefault(f.clause.value, []).append((i, f))
    for items in by_clause.values():
        items.sort(key=lambda item: (item[1].severity.rank, item[0]))
    clause_order = [v.clause.value for v in report.verdicts]
    clause_order += sorted(c for c in by_clause if c not in clause_order)
    agreement_json = json.dumps(_agreement_doc(report), indent=2, ensure_ascii=False) if _agreement_doc(report) else ""
    counts = Counter(v.status for v in report.verdicts)
    return _ENV.get_template("report.html.j2").render(
        report=report,
        charts=charts(report),
        clause_order=clause_order,
        by_clause=by_clause,
        verdict_of={v.clause.value: v for v in report.verdicts},
        agreement_json=agreement_json,
        counts={s.value: counts[s] for s in Status},
        failed=report.failed,
        Severity=Severity,
        max_rows=MAX_EVIDENCE_ROWS,
        severity_colour={s.value: c for s, c in _SEVERITY_COLOUR.items()},
    )
