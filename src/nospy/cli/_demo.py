"""``nospy demo``: the main job on the bundled example."""

from __future__ import annotations

from pathlib import Path

import typer

from nospy.cli._common import console


def demo(
    out: Path = typer.Option(
        Path("demo-out"), "--out", "-o", help="Folder for the demo's keys, signatures and reports."
    ),
    examples: Path | None = typer.Option(
        None, "--examples", help="Folder with the example inputs (default: the checkout's examples/)."
    ),
) -> None:
    """Run the main job on the bundled example: sign the example agreement as both parties and verify it."""
    # deferred: the stage stack is heavy and `nospy --help` or another command must not pay for it
    from nospy.demo import run_demo  # noqa: PLC0415

    result = run_demo(out, examples, say=lambda text: console.print(f"[green]✓[/] {text}"))
    console.print(f"demo output in {result.out.resolve()}")
    if result.report is not None:
        console.print(f"HTML report: {result.report.resolve()}")
    if not result.ok:
        raise typer.Exit(1)
