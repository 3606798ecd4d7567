"""``nospy deployment``: what of the deployment violates the agreement, and what must move where."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from nospy._fileio import write_atomic
from nospy.cli._common import TextOrJson, err_console
from nospy.errors import InputError

app = typer.Typer(help="Deployment evidence: network placement and data residency.", no_args_is_help=True)


@app.command("report")
def report(  # noqa: PLR0917 - typer passes every option as a parameter
    agreement: Path = typer.Argument(..., help="The agreement: signed (DSSE JSON) or plain YAML/JSON."),
    inventory: list[Path] = typer.Option(
        [], "--inventory", help="Network inventory: NetBox CSV export or API JSON, plain CSV or YAML (repeatable)."
    ),
    zones: Path | None = typer.Option(None, "--zones", help="Zones file mapping the inventory's roles/sites/tags."),
    infrastructure: list[Path] = typer.Option(
        [],
        "--infrastructure",
        help="Terraform plan or state: `terraform show -json` output, or a state file (repeatable).",
    ),
    fmt: TextOrJson = typer.Option(TextOrJson.TEXT, "--format", "-f", help="Report format."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the report here (default: standard output)."
    ),
) -> None:
    """List what violates the agreement's placement and data clauses, and where each thing may go
    (exit 0 nothing must move, 1 something must, 2 evidence unreadable or nothing checked)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.agreement.schema import Clause  # noqa: PLC0415
    from nospy.deployment.moves import plan_moves, render_text  # noqa: PLC0415
    from nospy.deployment.sources import sources_for  # noqa: PLC0415
    from nospy.findings import Target  # noqa: PLC0415
    from nospy.verify import check  # noqa: PLC0415

    sources = sources_for(inventory, zones, infrastructure)
    if not sources:
        raise InputError("give deployment evidence: --inventory FILE and/or --infrastructure PLAN")
    parsed = agr.load(agreement)  # a remediation list, not a verdict: the signatures are `nospy check`'s job
    result = check(
        parsed, sources, Target(path=str(agreement)), progress=lambda text: err_console.print(f"[dim]{text}[/]")
    )
    statuses = {v.clause: v.status.value for v in result.verdicts}
    clauses = {c.value: statuses.get(c, "not in the agreement") for c in (Clause.PLACEMENT, Clause.DATA)}
    summary = next((v for k, v in result.inventory.items() if k.startswith("inventory:")), None)
    by_zone = summary.get("zones") if isinstance(summary, dict) else None
    plan = plan_moves(
        parsed.id,
        result.findings,
        errors=result.errors,
        checked=[s.label for s in sources],
        clauses=clauses,
        zones=by_zone or {},
    )
    text = plan.model_dump_json(indent=2) + "\n" if fmt is TextOrJson.JSON else render_text(plan)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text.encode())
        err_console.print(f"wrote {output}")
    if plan.moves:
        raise typer.Exit(1)
    if plan.errors or not any(status in ("pass", "fail") for status in clauses.values()):
        raise typer.Exit(2)  # nothing found to move, but not everything could be read, or nothing was checked
