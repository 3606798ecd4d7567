"""``nospy release``, ``nospy log`` and ``nospy witness``: the firmware transparency log."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nospy._fileio import read_limited, write_atomic
from nospy.cli._common import console, err_console
from nospy.errors import InputError

if TYPE_CHECKING:
    from nospy import keys

log_app = typer.Typer(help="Run and check a firmware transparency log (C2SP tlog-tiles).", no_args_is_help=True)
witness_app = typer.Typer(help="Witness logs: cosign consistent checkpoints (C2SP tlog-witness).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("release")(release)
    app.add_typer(log_app, name="log")
    app.add_typer(witness_app, name="witness")


def release(
    images: list[Path] = typer.Argument(
        ..., help="Firmware image file; several when the release ships several (each is checked)."
    ),
    *,
    key: Path = typer.Option(..., "--key", "-k", help="Vendor signing key (.skey)."),
    product: str = typer.Option(..., "--product", help="Product identifier, e.g. acme-rx200."),
    version: str = typer.Option(..., "--version", help="Release version."),
    sbom: Path | None = typer.Option(None, "--sbom", help="SBOM file (logged by digest only)."),
    report: Path | None = typer.Option(None, "--report", help="Evaluation report (logged by digest only)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Default: IMAGE.release.json."),
) -> None:
    """Write a signed release manifest: an in-toto Statement v1 in a DSSE envelope."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import keys  # noqa: PLC0415
    from nospy.ledger.release import make_release  # noqa: PLC0415

    env = make_release(images, keys.read_signing_key(key), product, version, sbom=sbom, report=report)
    out = output or images[0].with_name(images[0].name + ".release.json")
    write_atomic(out, env.to_json().encode())
    console.print(f"wrote {out}")


@log_app.command("init")
def log_init(
    directory: Path = typer.Argument(..., help="New log directory."),
    origin: str = typer.Option(..., "--origin", help="Checkpoint origin, e.g. log.example/nospy."),
    key: Path = typer.Option(..., "--key", "-k", help="The log's signing key (.skey); its path is recorded."),
    trust: list[Path] = typer.Option([], "--trust", help="Vendor verifier key (.vkey) whose manifests are accepted."),
    witness: list[str] = typer.Option(
        [], "--witness", help="URL=VKEY: a witness to ask for cosignatures, and its (cosigner) verifier key file."
    ),
) -> None:
    """Create an empty log and sign its first (size 0) checkpoint."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import keys  # noqa: PLC0415
    from nospy.ledger.checkpoint import parse_cosigner_key  # noqa: PLC0415
    from nospy.ledger.storage import init_log  # noqa: PLC0415

    skey = keys.read_signing_key(key)
    witnesses = []
    for item in witness:
        url, sep, vkey = item.rpartition("=")
        if not sep:
            raise InputError(f"--witness {item!r}: expected URL=VKEY_FILE")
        witnesses.append((url, parse_cosigner_key(read_limited(Path(vkey), 4096).decode("utf-8", "replace"))))
    init_log(directory, origin, skey, key, [keys.read_verifier_key(p) for p in trust], witnesses=witnesses)
    if skey.name != origin:  # tlog-checkpoint: the key name SHOULD be the origin; witnesses look logs up by it
        err_console.print(f"warning: the log key is named {skey.name!r}, not the origin {origin!r}")
    console.print(f"created log {origin} in {directory}; log key: {skey.verifier}")


@log_app.command("add")
def log_add(
    directory: Path = typer.Argument(..., help="Log directory."),
    manifests: list[Path] = typer.Argument(..., help="Signed release manifests (nospy release)."),
) -> None:
    """Append release manifests signed by a trusted vendor key (duplicates keep their index)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.ledger.release import entry_bytes, read_release  # noqa: PLC0415
    from nospy.ledger.storage import LogWriter, read_config  # noqa: PLC0415
    from nospy.ledger.tiles import MAX_ENTRY  # noqa: PLC0415

    trusted = read_config(directory).trusted_keys()
    entries = []
    for path in manifests:
        env, statement = read_release(read_limited(path, MAX_ENTRY), trusted)
        entries.append((path, entry_bytes(env), statement))
    with LogWriter(directory) as writer:
        indices = writer.add([e for _, e, _ in entries])
        size = writer.size
    for (path, _, st), index in zip(entries, indices, strict=True):
        console.print(f"{path}: index {index} ({st.predicate.product} {st.predicate.version})")
    console.print(f"log size {size}")


def _token() -> str:
    token = os.environ.get("NOSPY_LOG_TOKEN", "")
    if not token:
        raise InputError("set NOSPY_LOG_TOKEN (or --token-file) to the write token")
    return token


@log_app.command("serve")
def log_serve(
    directory: Path = typer.Argument(..., help="Log directory."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    token_file: Path | None = typer.Option(None, "--token-file", help="File holding the write token."),
) -> None:
    """Serve the log over HTTP: GET checkpoint and tiles, POST /add with a bearer token."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.ledger.server import LogServer  # noqa: PLC0415

    token = read_limited(token_file, 4096).decode().strip() if token_file else _token()
    server = LogServer(directory, token, host, port)
    console.print(f"serving {directory} at {server.url}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.close()


def _log_key(location: str, key: Path | None) -> keys.VerifierKey:
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import keys  # noqa: PLC0415
    from nospy.ledger.storage import read_config  # noqa: PLC0415

    if key is not None:
        return keys.read_verifier_key(key)
    if not location.startswith(("http://", "https://")):
        return read_config(Path(location)).verifier()
    raise InputError("--key is required for a log read over HTTP")


def _digest(sha256: str | None, image: Path | None) -> str:
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.ledger.release import sha256_file  # noqa: PLC0415

    if (sha256 is None) == (image is None):
        raise InputError("give exactly one of --sha256 and --image")
    if image is not None:
        return sha256_file(image)
    return str(sha256)


@log_app.command("prove")
def log_prove(
    log: str = typer.Argument(..., help="Log directory or URL."),
    sha256: str | None = typer.Option(None, "--sha256", help="SHA-256 of the firmware image."),
    image: Path | None = typer.Option(None, "--image", help="The firmware image (instead of --sha256)."),
    key: Path | None = typer.Option(None, "--key", "-k", help="Log verifier key (default: the directory's)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the .tlog-proof."),
) -> None:
    """Write a C2SP tlog-proof that the image's release is in the log (exit 1 if it is not)."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.ledger import find_release  # noqa: PLC0415

    evidence = find_release(log, _log_key(log, key), _digest(sha256, image))
    if evidence is None:
        console.print("not in the log")
        raise typer.Exit(1)
    write_atomic(output, evidence.tlog_proof().encode())
    ev = evidence
    console.print(f"wrote {output}: index {ev.index} of {ev.tree_size} ({ev.product} {ev.version})")


@log_app.command("verify")
def log_verify(
    proof: Path = typer.Argument(..., help="A .tlog-proof file."),
    *,
    key: Path = typer.Option(..., "--key", "-k", help="Log verifier key."),
    sha256: str | None = typer.Option(None, "--sha256", help="SHA-256 of the firmware image."),
    image: Path | None = typer.Option(None, "--image", help="The firmware image (instead of --sha256)."),
    witness: list[Path] = typer.Option([], "--witness", help="Witness (cosigner) verifier key."),
    quorum: int = typer.Option(0, "--quorum", help="How many of the witnesses must have cosigned."),
) -> None:
    """Check a tlog-proof offline: signed checkpoint, cosignatures, and the inclusion proof."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import keys  # noqa: PLC0415
    from nospy.ledger import verify_proof  # noqa: PLC0415
    from nospy.ledger.checkpoint import CosignerKey  # noqa: PLC0415

    cosigners = [CosignerKey.from_verifier(keys.read_verifier_key(p)) for p in witness]
    ev = verify_proof(
        read_limited(proof, 1 << 20),
        keys.read_verifier_key(key),
        _digest(sha256, image),
        cosigners=cosigners,
        quorum=quorum,
    )
    console.print(f"ok: index {ev.index} of {ev.tree_size} in {ev.origin} ({ev.product} {ev.version})")


def _default_state(log_key: keys.VerifierKey) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "nospy" / "audit" / f"{log_key.key_id.hex()}.checkpoint"


@log_app.command("audit")
def log_audit(
    log: str = typer.Argument(..., help="Log directory or URL."),
    key: Path = typer.Option(..., "--key", "-k", help="Log verifier key."),
    origin: str | None = typer.Option(None, "--origin", help="Expected checkpoint origin."),
    state: Path | None = typer.Option(None, "--state", help="Last seen checkpoint (default: XDG state dir)."),
) -> None:
    """Verify the checkpoint, recompute the whole tree, check consistency with the last audit."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import keys  # noqa: PLC0415
    from nospy.ledger import audit_log, open_source  # noqa: PLC0415

    vkey = keys.read_verifier_key(key)
    state_path = state or _default_state(vkey)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    result = audit_log(open_source(log), vkey, origin=origin, state=state_path)
    seen = "" if result.previous_size is None else f", consistent with size {result.previous_size} seen before"
    if result.behind:
        seen = (
            f"; behind size {result.previous_size} seen before, and a prefix of it (a cache or mirror behind"
            " the log?): the checkpoint seen is kept"
        )
    if result.writer_state_checked:
        seen += "; the writer's .nospy/ state agrees with it"
    if result.unpublished_files:
        past = "of the larger tree" if result.behind else "past the checkpoint, from a batch being written,"
        seen += f" ({result.unpublished_files} files {past} left alone)"
    console.print(
        f"ok: {result.checkpoint.origin} size {result.checkpoint.size}, {result.files_checked} files checked{seen}"
    )


@witness_app.command("serve")
def witness_serve(
    key: Path = typer.Option(..., "--key", "-k", help="Witness signing key (.skey)."),
    log: list[Path] = typer.Option(..., "--log", help="Verifier key of a log to witness (its name is the origin)."),
    state: Path = typer.Option(Path("witness-state.json"), "--state", help="Where the latest checkpoints are kept."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8081, "--port"),
) -> None:
    """Serve POST /add-checkpoint and cosign checkpoints consistent with the last one seen."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy import keys  # noqa: PLC0415
    from nospy.ledger.checkpoint import CosignerKey  # noqa: PLC0415
    from nospy.ledger.server import WitnessServer  # noqa: PLC0415
    from nospy.ledger.witness import Witness  # noqa: PLC0415

    skey = keys.read_signing_key(key)
    server = WitnessServer(Witness(skey, [keys.read_verifier_key(p) for p in log], state), host, port)
    console.print(f"witness {skey.name} at {server.url}; cosigner key: {CosignerKey.from_verifier(skey.verifier)}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.close()
