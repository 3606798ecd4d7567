"""``nospy keys``: Ed25519 keys in C2SP signed-note form."""

from __future__ import annotations

from pathlib import Path

import typer

from nospy._fileio import write_atomic
from nospy.cli._common import console

app = typer.Typer(help="Create signing keys (C2SP signed-note form, Ed25519).", no_args_is_help=True)


@app.command("generate")
def generate(
    name: str = typer.Argument(..., help="Key name, e.g. acme.example or bharat-telecom (no spaces, no '+')."),
    directory: Path = typer.Option(Path(), "--dir", "-d", help="Where to write NAME.skey and NAME.vkey."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing key files."),
) -> None:
    """Write NAME.skey (secret, mode 0600) and NAME.vkey (public, to share)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import keys  # noqa: PLC0415

    key = keys.generate(name)
    stem = name.replace("/", "_")
    skey, vkey = directory / f"{stem}.skey", directory / f"{stem}.vkey"
    write_atomic(skey, f"{key}\n".encode(), 0o600, overwrite=force)
    write_atomic(vkey, f"{key.verifier}\n".encode(), 0o644, overwrite=force)
    console.print(f"wrote {skey} (keep secret) and {vkey}")
    console.print(str(key.verifier))
