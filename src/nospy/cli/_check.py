"""``nospy check``: every clause of an agreement against the evidence given."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from nospy._fileio import write_atomic
from nospy._report_format import Format
from nospy.cli._common import err_console, read_agreement


def check(  # noqa: PLR0917 - typer passes every option as a parameter
    agreement: Path = typer.Argument(..., help="The agreement: signed (DSSE JSON) or plain YAML/JSON."),
    key: list[Path] = typer.Option(
        [], "--key", "-k", help="Verifier key (.vkey) of a party that must have signed; repeat for each party."
    ),
    firmware: list[Path] = typer.Option(
        [], "--firmware", help="Firmware image or extracted root filesystem folder; repeatable."
    ),
    inventory: list[Path] = typer.Option(
        [], "--inventory", help="Network inventory: NetBox CSV export or API JSON, plain CSV or YAML (repeatable)."
    ),
    zones: Path | None = typer.Option(None, "--zones", help="Zones file mapping the inventory's roles/sites/tags."),
    infrastructure: list[Path] = typer.Option(
        [],
        "--infrastructure",
        help="Terraform plan or state: `terraform show -json` output, or a state file (repeatable).",
    ),
    traffic: list[Path] = typer.Option([], "--traffic", help="A capture or flow log (pcap, NetFlow, Zeek ...)."),
    traffic_local: list[str] = typer.Option([], "--traffic-local", help="CIDR of the customer's own network."),
    geoip: Path | None = typer.Option(None, "--geoip", help="MaxMind DB file for --traffic (default tor-geoipdb)."),
    log: str | None = typer.Option(
        None, "--log", help="Transparency log (folder or URL) that must hold every --firmware image's release."
    ),
    log_key: Path | None = typer.Option(None, "--log-key", help="The log's verifier key (.vkey), for --log."),
    fmt: Format = typer.Option(Format.TABLE, "--format", "-f", help="Report format."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the report here (default: standard output)."
    ),
) -> None:
    """Check equipment against an agreement: one verdict per clause (exit 0 all pass, 1 a clause fails)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.evidence import SourceOptions, build_sources  # noqa: PLC0415
    from nospy.findings import Target  # noqa: PLC0415
    from nospy.keys import read_verifier_key  # noqa: PLC0415
    from nospy.report import render  # noqa: PLC0415
    from nospy.verify import check as run_check  # noqa: PLC0415

    parsed, signed_by = read_agreement(agreement, key)
    sources = build_sources(
        {"firmware": firmware, "inventory": inventory, "infrastructure": infrastructure, "traffic": traffic},
        SourceOptions(
            zones=zones,
            log=log,
            log_key=read_verifier_key(log_key) if log_key is not None else None,
            geoip=geoip,
            traffic_local=tuple(traffic_local),
        ),
    )
    report = run_check(
        parsed,
        sources,
        Target(path=str(agreement)),
        signed_by,
        progress=lambda text: err_console.print(f"[dim]{text}[/]"),
    )
    text = render(report, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text.encode())
        err_console.print(f"wrote {output}")
    if report.failed:
        raise typer.Exit(1)
