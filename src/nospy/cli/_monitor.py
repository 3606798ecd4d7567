"""``nospy monitor`` and ``nospy history``: follow a transparency log and check every new release."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nospy.cli._common import console, err_console, read_agreement

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from nospy.server.settings import Settings


class HistoryFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _settings(data: Path | None, database_url: str | None) -> Settings:
    from pydantic import ValidationError  # noqa: PLC0415

    from nospy.errors import InputError  # noqa: PLC0415
    from nospy.server.settings import Settings  # noqa: PLC0415

    try:
        return Settings.from_env(data_dir=data, database_url=database_url)
    except ValidationError as exc:
        raise InputError(exc.errors(include_url=False)[0]["msg"]) from None


def _database(settings: Settings) -> tuple[Engine, sessionmaker[Session]]:
    from nospy.server.db import connect, migrate  # noqa: PLC0415

    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine, sessions = connect(settings.url)
    migrate(engine)
    return engine, sessions


_DATA_HELP = "Folder of the SQLite database (env NOSPY_DATA_DIR; default ./nospy-data), shared with `nospy serve`."
_DB_HELP = "SQLAlchemy URL, e.g. postgresql+psycopg://... (env NOSPY_DATABASE_URL)."


def monitor(  # noqa: PLR0917 - typer passes every option as a parameter
    log: str = typer.Option(..., "--log", help="The transparency log: a folder or an http(s) URL (C2SP tlog-tiles)."),
    log_key: Path = typer.Option(..., "--log-key", help="The log's verifier key (.vkey)."),
    agreement: Path = typer.Option(..., "--agreement", help="The agreement: signed (DSSE JSON) or plain YAML/JSON."),
    images: str = typer.Option(
        ...,
        "--images",
        help="Image store: a folder or an http(s) URL, holding images named by SHA-256 (or XX/SHA-256) or by the"
        " manifest's file name; images fetched over HTTP are kept in the data folder's images/.",
    ),
    key: list[Path] = typer.Option(
        [], "--key", "-k", help="Verifier key (.vkey) of a party that must have signed the agreement; repeatable."
    ),
    trust: list[Path] = typer.Option(
        [], "--trust", help="Vendor verifier key (.vkey): only releases it signed count (repeatable)."
    ),
    webhook: str | None = typer.Option(None, "--webhook", help="POST every alert as JSON to this http(s) URL."),
    once: bool = typer.Option(
        False,
        "--once",
        help="One round, then exit: 0 nothing new fails, 1 an alert, 2 bad input or another monitor's round stuck.",
    ),
    interval: float = typer.Option(300.0, "--interval", min=1.0, help="Seconds between rounds (without --once)."),
    stale_after: float = typer.Option(
        3600.0,
        "--stale-after",
        min=1.0,
        max=366 * 86400.0,
        help="Seconds without progress after which another monitor's round on the log is said to be stuck"
        " (exit 2 with --once) rather than left to finish.",
    ),
    data: Path | None = typer.Option(None, "--data", help=_DATA_HELP),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
) -> None:
    """Follow a transparency log: check each new release of the agreement's products, diff it against the
    previous release, store the result and alert on a clause that starts failing or a log that forks."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.errors import NospyError  # noqa: PLC0415
    from nospy.keys import read_verifier_key  # noqa: PLC0415
    from nospy.monitor import Monitor  # noqa: PLC0415

    parsed, signed_by = read_agreement(agreement, key)
    if not parsed.products:
        err_console.print(
            f"[yellow]note:[/] agreement {parsed.id} names no products: every release in the log is checked"
        )
    settings = _settings(data, database_url)
    engine, sessions = _database(settings)
    from nospy.firmware.cache import ContentCache  # noqa: PLC0415

    # releases of one product share most files: the content cache (same database) analyses only what changed
    cache = ContentCache(engine, engine.url.render_as_string(hide_password=False))
    try:
        mon = Monitor(
            sessions,
            log=log,
            log_key=read_verifier_key(log_key),
            agreement=parsed,
            images=images,
            signed_by=signed_by,
            vendor_keys=[read_verifier_key(t) for t in trust] if trust else None,
            webhook=webhook,
            say=lambda text: err_console.print(text, markup=False),
            cache=cache,
            stale_after=stale_after,
            downloads=settings.data_dir / "images",
        )
        while True:
            try:
                result = mon.run_round()
            except NospyError as exc:
                if once:
                    raise
                # a log that cannot be read now (network, a half-published tile) is tried again later
                err_console.print(f"[red]round failed:[/] {exc}", highlight=False)
            else:
                if result.busy is not None:  # said by the monitor
                    if result.stuck is not None:  # a hung monitor would otherwise stop every round unseen
                        err_console.print(f"[red]error:[/] {result.stuck}", highlight=False)
                        if once:
                            raise typer.Exit(2)
                    elif once:  # an overlapping cron run is no failure: the round is the other monitor's
                        raise typer.Exit(0)
                    time.sleep(interval)
                    continue
                console.print(
                    f"{result.origin}: size {result.tree_size}, {len(result.new_releases)} new release(s), "
                    f"{len(result.checked)} checked, {len(result.missing)} missing image(s), "
                    f"{len(result.alerts)} alert(s)",
                    markup=False,
                )
                for alert in result.alerts:
                    console.print(json.dumps(alert, indent=2), markup=False)
                if result.forked is not None:
                    err_console.print(f"[bold red]log not trusted:[/] {result.forked}", highlight=False)
                    raise typer.Exit(1)
                if once:
                    raise typer.Exit(1 if result.alerted else 0)
            time.sleep(interval)
    finally:
        engine.dispose()


def history(
    product: str = typer.Argument(..., help="Product identifier, as in the release manifests."),
    fmt: HistoryFormat = typer.Option(HistoryFormat.TABLE, "--format", "-f", help="table or json."),
    data: Path | None = typer.Option(None, "--data", help=_DATA_HELP),
    database_url: str | None = typer.Option(None, "--database-url", help=_DB_HELP),
) -> None:
    """Verdicts per release of PRODUCT, as `nospy monitor` recorded them (exit 2 if it has none)."""
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from nospy.errors import InputError  # noqa: PLC0415
    from nospy.monitor import history as hist  # noqa: PLC0415

    engine, sessions = _database(_settings(data, database_url))
    try:
        with sessions() as session:
            rows = hist.releases(session, product)
    finally:
        engine.dispose()
    if not rows:
        raise InputError(f"no releases of {product!r} in the monitor's history")
    if fmt is HistoryFormat.JSON:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
        return
    clauses = list(dict.fromkeys(c for r in rows for c in r.verdicts))
    table = Table(title=escape(f"{product}: {sum(r.image_index == 0 for r in rows)} release(s)"))
    several = any(r.image_count > 1 for r in rows)  # releases that ship several images: a row for each
    for col in (
        "version",
        "log index",
        *(["image"] if several else []),
        "image sha256",
        "checked",
        *clauses,
        "new failing",
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        checked = r.checked.strftime("%Y-%m-%d %H:%M:%SZ") if r.checked else r.state
        image = [f"{r.image_index + 1}/{r.image_count} {r.image}"] if several else []
        cells = [
            r.version,
            str(r.log_index),
            *image,
            r.sha256[:16],
            checked,
            *[r.verdicts.get(c, "-") for c in clauses],
            ", ".join(r.new_failing) or ("-" if r.state == "done" else (r.problem or r.state)),
        ]
        table.add_row(*[escape(c) for c in cells])  # versions and problems come from the log: no markup
    # one row per release image, one column per clause: wider than a terminal's default, and never folded
    Console(highlight=False, width=max(console.width, 240)).print(table)
