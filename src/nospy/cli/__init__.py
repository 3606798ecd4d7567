"""The ``nospy`` command line. Thin: it parses arguments, calls the stages and maps errors to exit
codes (0 every checked clause passes, 1 a clause or signature fails, 2 bad usage or unreadable input).
Only this package calls ``sys.exit``."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Sequence

import typer

from nospy import __version__
from nospy.cli import (
    _agreement,
    _check,
    _demo,
    _deployment,
    _fleet,
    _keys,
    _ledger,
    _ls,
    _monitor,
    _scan,
    _serve,
    _traffic,
)
from nospy.cli._common import err_console, process_end
from nospy.errors import NospyError, VerificationError

app = typer.Typer(
    name="nospy",
    help="Check no-spy, no-backdoor agreements between equipment vendors and their customers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nospy {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Check no-spy, no-backdoor agreements between equipment vendors and their customers."""


app.add_typer(_keys.app, name="keys")
app.add_typer(_agreement.app, name="agreement")
app.add_typer(_deployment.app, name="deployment")
app.add_typer(_fleet.app, name="fleet")
app.command("check")(_check.check)
app.command("demo")(_demo.demo)
app.command("ls")(_ls.ls)
app.command("serve")(_serve.serve)
_ledger.register(app)
app.command("scan")(_scan.scan)
app.command("diff")(_scan.diff)
app.command("traffic")(_traffic.traffic)
app.command("monitor")(_monitor.monitor)
app.command("history")(_monitor.history)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit code.

    Commands signal a failing check with ``typer.Exit(1)``; nospy's own errors are mapped here, so a
    user never sees a traceback for bad input.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="nospy")
    except SystemExit as exc:  # typer's standalone mode always ends here on success or usage error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except VerificationError as exc:
        err_console.print(f"[bold red]verification failed:[/] {exc}", highlight=False)
        return 1
    except NospyError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except Exception as exc:
        if os.environ.get("NOSPY_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (set NOSPY_DEBUG=1 for a traceback)",
            highlight=False,
        )
        return 2
    return 0


def _flushed(code: int) -> int:
    """Write out what stdout and stderr hold before the process ends at once; ``code``, or 2 when the
    output could not be written (a full disk, an I/O error). A reader that stopped early (``| head``)
    is no error, as Python's own exit would have it."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe, a closed stream
            pass
        except OSError as exc:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"error: the output could not be written: {exc}\n")
                sys.stderr.flush()
            code = code or 2
    return code


def main() -> None:
    process_end.ends = True
    code = run()
    if process_end.hard is not None:
        try:
            code = _flushed(code)
        finally:
            process_end.hard()
            os._exit(code)
    # The interpreter's last collection walks every object the command loaded (Ray, SQLAlchemy,
    # cyclonedx: a few hundred ms); frozen, they are left to the exit. Only garbage in reference
    # cycles is affected, whose finalizers Python does not promise to run at exit anyway; the
    # commands close their files and databases themselves.
    gc.freeze()
    sys.exit(code)
