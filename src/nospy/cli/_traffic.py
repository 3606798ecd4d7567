"""``nospy traffic``: where a capture's data went, by country and by destination, optionally checked."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nospy.cli._common import console, err_console

if TYPE_CHECKING:
    from nospy.findings import Finding
    from nospy.traffic.aggregate import Summary
    from nospy.traffic.interface import Capture


class TrafficFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def traffic(  # noqa: PLR0917 - typer passes options as parameters
    captures: list[Path] = typer.Argument(..., help="Captures or flow logs (pcap, pcapng, NetFlow, IPFIX, Zeek ...)."),
    agreement: Path | None = typer.Option(None, "--agreement", "-a", help="Check data.countries and endpoints."),
    geoip: Path | None = typer.Option(None, "--geoip", help="A MaxMind DB (.mmdb) file instead of tor-geoipdb."),
    local: list[str] = typer.Option(
        [], "--local", help="The customer's own network (CIDR): flows to it are not egress. Repeatable."
    ),
    fmt: TrafficFormat = typer.Option(TrafficFormat.TABLE, "--format", "-f", help="Output format."),
    parquet: Path | None = typer.Option(
        None, "--parquet", help="Also write the normalised flows to this Parquet file."
    ),
) -> None:
    """Bytes, packets and flows by destination country and host (exit 1 if --agreement's rules find something)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.findings import Severity  # noqa: PLC0415
    from nospy.traffic.aggregate import aggregate, summarise  # noqa: PLC0415
    from nospy.traffic.dns import merge_names  # noqa: PLC0415
    from nospy.traffic.flows import Flows  # noqa: PLC0415
    from nospy.traffic.geo import open_geolocator  # noqa: PLC0415
    from nospy.traffic.parquet import flows_table, write_parquet  # noqa: PLC0415
    from nospy.traffic.read import read_capture  # noqa: PLC0415
    from nospy.traffic.rules import evaluate, parse_networks  # noqa: PLC0415

    parsed = agr.load(agreement) if agreement else None
    geo = open_geolocator(geoip)
    nets = parse_networks(local)
    caps: list[Capture] = []
    for path in captures:
        caps.append(read_capture(path))
    flows = Flows.concat([c.flows for c in caps])
    # DNS answers from one capture name the addresses in the others (a pcap beside NetFlow of the same day)
    names = merge_names([{k: set(v) for k, v in c.names.items()} for c in caps])
    egress = aggregate(flows, geo, nets)
    summary = summarise(flows, egress, names, geo)
    label = "traffic:" + ",".join(str(p) for p in captures)
    findings = evaluate(label, egress, names, geo, parsed)[0] if parsed else []
    if parquet is not None:
        bounds = [0]
        for c in caps:
            bounds.append(bounds[-1] + len(c.flows))
        write_parquet(
            [
                flows_table(c.flows, geo, egress.mask[bounds[i] : bounds[i + 1]], str(captures[i]))
                for i, c in enumerate(caps)
            ],
            parquet,
        )
        err_console.print(f"wrote {parquet}")
    errors = [
        {"source": str(path), "location": n.location, "message": n.message}
        for path, c in zip(captures, caps, strict=True)
        for n in c.errors
    ]
    if fmt is TrafficFormat.JSON:
        out = {
            "captures": [
                {"path": str(p), "format": c.format, "records": c.records, "flows": len(c.flows), "detail": c.detail}
                for p, c in zip(captures, caps, strict=True)
            ],
            "summary": summary.model_dump(mode="json"),
            "findings": [f.model_dump(mode="json") for f in findings],
            "errors": errors,
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        _table(captures, caps, summary, findings, errors)
    if any(f.severity is not Severity.INFO for f in findings):
        raise typer.Exit(1)


def _table(
    captures: list[Path], caps: list[Capture], summary: Summary, findings: list[Finding], errors: list[dict[str, str]]
) -> None:
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from rich.table import Table  # noqa: PLC0415

    for p, c in zip(captures, caps, strict=True):
        console.print(f"[bold]{p}[/]: {c.format}, {c.records} records, {len(c.flows)} flows")
    db = summary.geolocation
    console.print(f"geolocation: {db.name}, {db.date or 'undated'} ({db.licence})")
    excluded = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in summary.excluded.items() if v)
    console.print(
        f"{summary.egress_flows} egress flows of {summary.flows}" + (f" (not egress: {excluded})" if excluded else "")
    )
    t = Table(
        "country",
        "status",
        "bytes",
        "packets",
        "flows",
        "destinations",
        title="egress by country",
        title_justify="left",
    )
    for r in summary.by_country:
        t.add_row(r.country, r.status, str(r.bytes), str(r.packets), str(r.flows), str(r.destinations))
    console.print(t)
    h = Table(
        "destination",
        "names",
        "country",
        "bytes",
        "packets",
        "flows",
        title="egress by destination",
        title_justify="left",
    )
    for d in summary.by_destination[:50]:
        h.add_row(d.address, ", ".join(d.names[:3]), d.country, str(d.bytes), str(d.packets), str(d.flows))
    console.print(h)
    if len(summary.by_destination) > 50:
        console.print(f"[dim]{len(summary.by_destination) - 50} more destinations in --format json[/]")
    if findings:
        f_table = Table("severity", "rule", "message", title="findings", title_justify="left")
        for f in findings:
            f_table.add_row(f.severity.value, f.rule, f.message)
        console.print(f_table)
    for e in errors:
        console.print(f"[yellow]could not read[/] {e['source']} {e['location']}: {e['message']}")
