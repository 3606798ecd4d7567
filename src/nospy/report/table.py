"""The terminal report: verdicts per clause, then findings by severity."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from nospy.findings import Report, Severity, Status

_STATUS_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.NOT_CHECKED: "yellow"}
_SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.HIGH: "red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def render(report: Report, width: int = 120) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, highlight=False, force_terminal=False, soft_wrap=False)
    title = report.target.path
    if report.agreement:
        title = f"{report.agreement.id} ({', '.join(report.agreement.signed_by) or 'signatures not verified'})"
    console.print(f"[bold]{title}[/]")
    if report.verdicts:
        verdicts = Table("clause", "verdict", "findings", "checked by", title="verdicts", title_justify="left")
        for v in report.verdicts:
            style = _STATUS_STYLE[v.status]
            verdicts.add_row(
                v.clause.value,
                f"[{style}]{v.status.value}[/]",
                str(len(v.findings)),
                ", ".join(v.checked_by) or (v.reason or ""),
            )
        console.print(verdicts)
    shown = sorted((f for f in report.findings if f.severity is not Severity.INFO), key=lambda f: f.severity.rank)
    if shown:
        findings = Table("severity", "rule", "where", "message", title="findings", title_justify="left")
        for f in shown:
            where = f.path or f.location or ""
            if f.line:
                where += f":{f.line}"
            findings.add_row(f"[{_SEVERITY_STYLE[f.severity]}]{f.severity.value}[/]", f.rule, where, f.message)
        console.print(findings)
    info = sum(1 for f in report.findings if f.severity is Severity.INFO)
    if info:
        console.print(f"[dim]{info} inventory entries (info) in the JSON report[/]")
    for e in report.errors:
        console.print(f"[yellow]could not read[/] {e.source}{'!' + e.location if e.location else ''}: {e.message}")
    return buf.getvalue()
