"""``nospy serve``: the web application (see `nospy.server`)."""

from __future__ import annotations

from pathlib import Path

import typer

from nospy.cli._common import console, err_console


def serve(
    *,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only)."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="TCP port."),
    data: Path | None = typer.Option(
        None, "--data", help="Folder for uploads and the SQLite database (env NOSPY_DATA_DIR; default ./nospy-data)."
    ),
    database_url: str | None = typer.Option(
        None, "--database-url", help="SQLAlchemy URL, e.g. postgresql+psycopg://... (env NOSPY_DATABASE_URL)."
    ),
    log: str | None = typer.Option(
        None, "--log", help="Show this transparency log (directory or http(s) URL) under /log (env NOSPY_LOG)."
    ),
    log_key: Path | None = typer.Option(
        None, "--log-key", help="The log's verifier key (.vkey); needed with --log (env NOSPY_LOG_KEY)."
    ),
    witness_key: list[Path] = typer.Option(
        [],
        "--witness-key",
        help="A witness's cosigner key; /log verifies the checkpoint's cosignatures by these (repeatable).",
    ),
    public_read: bool = typer.Option(
        False,
        "--public-read",
        help="Let anyone who reaches the server read checks, reports and diffs (default: a token is needed).",
    ),
    time_limit: float | None = typer.Option(
        None, "--time-limit", help="Seconds a check or diff may run before it is failed (env NOSPY_TIME_LIMIT)."
    ),
    new_token: str | None = typer.Option(
        None, "--new-token", metavar="NAME", help="Create an API token named NAME, print it once, and exit."
    ),
    revoke_token: str | None = typer.Option(
        None, "--revoke-token", metavar="NAME", help="Delete the API token named NAME and exit."
    ),
) -> None:
    """Run the web application: upload agreements and evidence, run checks, browse verdicts and findings."""
    # the web stack loads only for this command, so every other command starts fast
    import uvicorn  # noqa: PLC0415
    from pydantic import ValidationError  # noqa: PLC0415

    from nospy.server import Settings, create_app  # noqa: PLC0415
    from nospy.server.auth import create_token  # noqa: PLC0415
    from nospy.server.auth import revoke_token as revoke_token_named  # noqa: PLC0415
    from nospy.server.db import connect, migrate  # noqa: PLC0415

    try:
        settings = Settings.from_env(
            data_dir=data,
            database_url=database_url,
            log=log,
            log_key=log_key,
            witness_keys=tuple(witness_key),
            public_read=public_read or None,
            time_limit=time_limit,
        )
    except ValidationError as exc:
        err_console.print(f"[red]error:[/] {exc.errors(include_url=False)[0]['msg']}")
        raise typer.Exit(2) from None
    if new_token is not None or revoke_token is not None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine, sessions = connect(settings.url)
        try:
            migrate(engine)
            if revoke_token is not None:
                revoke_token_named(sessions, revoke_token)
                console.print(f"revoked API token {revoke_token!r}")
            else:
                token = create_token(sessions, str(new_token))
                err_console.print(f"API token {new_token!r} (shown once; keep it secret):")
                console.print(token)
        finally:
            engine.dispose()
        return
    if settings.public_read and host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(f"[yellow]warning:[/] public reads on {host}: anyone who reaches it can read the checks")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", workers=1)
