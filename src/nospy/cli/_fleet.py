"""``nospy fleet scan``: many images in parallel on Ray, sharing the content cache."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from nospy._fileio import write_atomic
from nospy.cli._common import err_console, process_end

app = typer.Typer(help="Many firmware images at once: every release, every vendor.", no_args_is_help=True)


class FleetFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


_SEVERITIES = ("critical", "high", "medium", "low", "info")


@app.command("scan")
def scan(  # noqa: PLR0917 - typer passes every option positionally
    images: Path = typer.Argument(
        ..., help="A folder of images (its files), or a text file of image paths (one a line, # comments)."
    ),
    agreement: Path | None = typer.Option(
        None, "--agreement", "-a", help="Check every image against this agreement (YAML/JSON/DSSE)."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray", help="A Ray cluster's address (ray://host:10001, host:6379); default: a local Ray on every core."
    ),
    fmt: FleetFormat = typer.Option(FleetFormat.TABLE, "--format", "-f", help="table or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the result here (default: stdout)."),
    use_cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="Share analysis results through the content cache (NOSPY_DATABASE_URL, or nospy.db in NOSPY_DATA_DIR).",
    ),
) -> None:
    """Scan many images in parallel: per image its verdicts, findings by severity and errors.

    Exit 1 when an image fails a clause, else 2 when an image could not be scanned, else 0.
    """
    # deferred: Ray and the stage stack are heavy and other commands must not pay for them
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.firmware.cache import ContentCache  # noqa: PLC0415
    from nospy.fleet import fleet_images, scan_fleet  # noqa: PLC0415

    paths = fleet_images(images)
    parsed = agr.load(agreement) if agreement is not None else None
    cache_url = ContentCache.default_url() if use_cache else None  # scan_fleet creates or migrates its schema

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task("scanning", total=len(paths))
        result = scan_fleet(
            paths,
            parsed,
            ray_address=ray_address,
            cache_url=cache_url,
            on_result=lambda r: progress.update(task, advance=1, description=Path(r.path).name),
            # a local Ray still starting when every image is done is not waited for (seconds): run as
            # a command, this process ends right after, and Ray's processes with it
            leave_ray=_leave_ray if process_end.ends else None,
        )
    text = result.model_dump_json(indent=2) + "\n" if fmt is FleetFormat.JSON else _table(result)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomic(output, text.encode())
        err_console.print(f"wrote {output}")
    if result.failed:
        raise typer.Exit(1)
    if result.unreadable:
        raise typer.Exit(2)


def _leave_ray() -> None:
    from nospy.fleet import end_descendants  # noqa: PLC0415

    process_end.hard = end_descendants


def _table(result: object) -> str:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from nospy.fleet import FleetResult  # noqa: PLC0415

    assert isinstance(result, FleetResult)  # noqa: S101 - typed for mypy; the caller passes one
    title = f"fleet: {len(result.images)} images" + (f", agreement {result.agreement}" if result.agreement else "")
    table = Table(title=title)
    for col in ("image", "status", "failing clauses", *_SEVERITIES, "errors"):
        table.add_column(col, justify="right" if col in (*_SEVERITIES, "errors") else "left")
    for img in result.images:
        failing = ", ".join(v.clause for v in img.verdicts if v.status == "fail")
        counts = [str(img.severities.get(s, 0)) for s in _SEVERITIES]
        table.add_row(img.path, img.status, failing or "-", *counts, str(len(img.errors)))
    console = Console(width=200, record=True, file=None, force_terminal=False, highlight=False)
    with console.capture() as cap:
        console.print(table)
        for img in result.images:
            for e in img.errors:
                console.print(f"{img.path}: {e.location + ': ' if e.location else ''}{e.message}", markup=False)
    return cap.get()
