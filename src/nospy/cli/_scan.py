"""``nospy scan`` and ``nospy diff``: firmware evidence from one image, and what changed between two."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from nospy._fileio import write_atomic
from nospy.cli._common import err_console


class ScanFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    HTML = "html"
    OSCAL = "oscal"
    CYCLONEDX = "cyclonedx"


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text.encode())
        err_console.print(f"wrote {output}")


def _inventory_text(inventory: dict[str, object]) -> str:
    """What the image holds, for a reader checking the agreement's lists (the JSON report has it all)."""
    inv = next(iter(inventory.values()), {})
    if not isinstance(inv, dict):
        return ""
    lines = []
    accounts = [
        f"{a['name']} ({a['service']}, {a['password']})" for a in inv.get("accounts", []) if isinstance(a, dict)
    ]
    services = [
        f"{s['program']} {s['protocol']}/{s['port'] or '?'} ({s['started_by']})"
        for s in inv.get("services", [])
        if isinstance(s, dict)
    ]
    components = [f"{c['name']} {c['version']}" for c in inv.get("components", []) if isinstance(c, dict)]
    endpoints = [str(e["host"]) for e in inv.get("endpoints", []) if isinstance(e, dict)]
    for title, items in (("accounts", accounts), ("services at boot", services), ("components", components)):
        lines.append(f"{title}: {', '.join(items) if items else 'none'}")
    shown = ", ".join(endpoints[:10]) + (f" and {len(endpoints) - 10} more" if len(endpoints) > 10 else "")
    lines.append(f"endpoints: {shown or 'none'}")
    return "\n".join(lines) + "\n"


def scan(  # noqa: PLR0917 - typer passes every option positionally
    image: Path = typer.Argument(..., help="Firmware image, or a folder holding an extracted root filesystem."),
    agreement: Path | None = typer.Option(
        None, "--agreement", "-a", help="Check against this agreement (YAML/JSON/DSSE)."
    ),
    rules: list[Path] = typer.Option([], "--rules", help="A folder of extra YARA rules (*.yar); repeatable."),
    geo: Path | None = typer.Option(
        None, "--geo", help="CSV of network,country rows for placing IP addresses (data.residency)."
    ),
    fmt: ScanFormat = typer.Option(
        ScanFormat.TABLE, "--format", "-f", help="table, json, sarif (2.1.0), html, oscal, or a CycloneDX 1.6 SBOM."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the report here (default: standard output)."
    ),
    use_cache: bool = typer.Option(
        False,
        "--cache/--no-cache",
        help="Reuse and store analysis results in the content cache (the web service's database:"
        " NOSPY_DATABASE_URL, or nospy.db in NOSPY_DATA_DIR, default ./nospy-data). Off by default:"
        " one scan writes nothing.",
    ),
) -> None:
    """Scan firmware for backdoors: accounts, services, consoles, keys, credentials, known backdoors, endpoints."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.firmware.components import cyclonedx_json  # noqa: PLC0415
    from nospy.firmware.geo import RangeTable  # noqa: PLC0415
    from nospy.firmware.scan import scan_report  # noqa: PLC0415
    from nospy.report import Format, render  # noqa: PLC0415

    parsed = agr.load(agreement) if agreement is not None else None
    lookup = RangeTable.load(geo) if geo is not None else None
    cache = None
    if use_cache:
        from nospy.firmware.cache import ContentCache  # noqa: PLC0415

        cache = ContentCache.open()
    try:
        report = scan_report(
            image, parsed, rules, lookup, progress=lambda text: err_console.print(f"[dim]{text}[/]"), cache=cache
        )
    finally:
        if cache is not None:
            cache.close()
    if fmt is ScanFormat.CYCLONEDX:
        inventory: object = next(iter(report.inventory.values()), {})
        components = inventory.get("components", []) if isinstance(inventory, dict) else []
        _write(cyclonedx_json(components, image.name), output)
    elif fmt is ScanFormat.TABLE:
        _write(render(report, Format.TABLE) + _inventory_text(report.inventory), output)
    else:
        _write(render(report, Format(fmt.value)), output)
    if report.failed:
        raise typer.Exit(1)


def diff(
    old: Path = typer.Argument(..., help="The earlier image or root filesystem folder."),
    new: Path = typer.Argument(..., help="The later image or root filesystem folder."),
    json_out: bool = typer.Option(False, "--json", help="JSON instead of text."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here (default: standard output)."),
) -> None:
    """What changed between two images: files, accounts, services, components, and findings that came or went."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.firmware.diff import diff_reports, render_diff  # noqa: PLC0415
    from nospy.firmware.scan import scan_report  # noqa: PLC0415

    progress = lambda text: err_console.print(f"[dim]{text}[/]")  # noqa: E731 - a one-line callback
    before, after = scan_report(old, progress=progress), scan_report(new, progress=progress)
    result = diff_reports(old, new, before, after)
    _write(result.model_dump_json(indent=2) + "\n" if json_out else render_diff(result), output)
    if result.findings_added:
        raise typer.Exit(1)
