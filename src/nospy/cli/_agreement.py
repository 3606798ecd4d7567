"""``nospy agreement``: write, sign, verify and show agreements."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nospy._fileio import write_atomic
from nospy.cli._common import TextOrJson, console
from nospy.errors import InputError

if TYPE_CHECKING:
    from nospy.agreement.schema import Agreement

app = typer.Typer(help="Write, sign, verify and show agreements.", no_args_is_help=True)


@app.command("init")
def init(
    output: Path | None = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented agreement template covering every section."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415

    text = agr.template()
    if output is None:
        sys.stdout.write(text)
        return
    write_atomic(output, text.encode(), overwrite=force)
    console.print(f"wrote {output}")


@app.command("sign")
def sign(
    file: Path = typer.Argument(..., help="Agreement YAML/JSON, or a signed agreement (DSSE JSON) to countersign."),
    key: Path = typer.Option(..., "--key", "-k", help="Signing key (.skey)."),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write the DSSE envelope (default: FILE itself for an envelope, else FILE's stem + .dsse.json).",
    ),
) -> None:
    """Sign an agreement's canonical JSON (RFC 8785) into a DSSE envelope, or add a signature to one."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.keys import read_signing_key  # noqa: PLC0415

    skey = read_signing_key(key)
    env = agr.sign(file, skey)
    if output is None:
        output = (
            file
            if file.name.endswith(".json") and _looks_signed(file)
            else file.with_name(file.name.rsplit(".", 1)[0] + ".dsse.json")
        )
    write_atomic(output, env.to_json().encode())
    names = ", ".join(s.keyid for s in env.signatures)
    console.print(f"wrote {output}: signed by {names}")


def _looks_signed(path: Path) -> bool:
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415

    try:
        agr.read_envelope(path)
    except InputError:
        return False
    return True


@app.command("verify")
def verify(
    file: Path = typer.Argument(..., help="Signed agreement (DSSE JSON)."),
    key: list[Path] = typer.Option(
        [], "--key", "-k", help="Verifier key (.vkey) of a party that must have signed; repeat for each party."
    ),
    fmt: TextOrJson = typer.Option(TextOrJson.TEXT, "--format", "-f", help="Output format."),
) -> None:
    """Check that every named key signed exactly this agreement (exit 0) or say why not (exit 1)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415
    from nospy.keys import read_verifier_key  # noqa: PLC0415

    verifiers = [read_verifier_key(k) for k in key]
    env = agr.read_envelope(file)
    agreement = agr.verify(env, verifiers, str(file))
    if fmt is TextOrJson.JSON:
        sys.stdout.write(
            json.dumps({"verified": True, "id": agreement.id, "signed_by": [v.label for v in verifiers]}) + "\n"
        )
        return
    console.print(f"[green]verified[/]: {agreement.id} signed by {', '.join(v.label for v in verifiers)}")


@app.command("show")
def show(
    file: Path = typer.Argument(..., help="Agreement YAML/JSON or signed agreement (DSSE JSON)."),
    fmt: TextOrJson = typer.Option(TextOrJson.TEXT, "--format", "-f", help="text, or json (the canonical JSON)."),
) -> None:
    """Show an agreement's clauses and, for a signed one, who signed it (not verified: use verify)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import agreement as agr  # noqa: PLC0415

    agreement = agr.load(file)
    if fmt is TextOrJson.JSON:
        sys.stdout.write(agr.canonical_json(agreement).decode() + "\n")
        return
    signers: list[str] = []
    with contextlib.suppress(InputError):
        signers = [s.keyid or "(no keyid)" for s in agr.read_envelope(file).signatures]
    _print_agreement(agreement, signers)


def _print_agreement(a: Agreement, signers: list[str]) -> None:
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from rich.table import Table  # noqa: PLC0415

    console.print(f"[bold]{a.title}[/] ({a.id})")
    console.print(f"vendor: {a.vendor}   customer: {a.customer}   products: {', '.join(a.products) or '-'}")
    if signers:
        console.print(f"signatures (unverified): {', '.join(signers)}")
    table = Table("clause", "what is allowed", show_lines=False)

    def row(name: str, present: bool, text: str) -> None:
        table.add_row(name, text if present else "[dim]not part of the agreement (not-checked)[/]")

    row(
        "accounts",
        a.accounts is not None,
        ", ".join(f"{x.name} ({'/'.join(x.access) or '-'}; {'/'.join(x.auth) or '-'})" for x in a.accounts or [])
        or "none",
    )
    row(
        "services",
        a.services is not None,
        ", ".join(f"{s.name} {s.protocol}/{s.port}" + (f" {s.program}" if s.program else "") for s in a.services or [])
        or "none",
    )
    row(
        "endpoints",
        a.endpoints is not None,
        ", ".join((e.host or e.cidr or "") + (f":{e.port}" if e.port else "") for e in a.endpoints or []) or "none",
    )
    row("data", a.data is not None, "countries: " + (", ".join(a.data.countries) if a.data else "") or "none")
    row(
        "keys",
        a.keys is not None,
        (
            f"private: {', '.join(a.keys.private) or 'none'}; authorized: {', '.join(a.keys.authorized) or 'none'}"
            if a.keys
            else ""
        ),
    )
    if a.placement is not None:
        p = a.placement
        share = f"; max share {p.max_share_percent:g}%" if p.max_share_percent is not None else ""
        row(
            "placement",
            True,
            f"zones: {', '.join(p.zones) or 'none'}{share}; excluded sites: {', '.join(p.excluded_sites) or 'none'}",
        )
    else:
        row("placement", False, "")
    row("software", a.software is not None, f"transparency log: {a.software.transparency_log}" if a.software else "")
    console.print(table)
