"""``nospy ls``: every file of a firmware image, with its container chain."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer
from rich.markup import escape

from nospy.cli._common import err_console, process_end
from nospy.firmware.unpack import Limits, open_image
from nospy.firmware.unpack.listing import Listing, list_tree

_DEFAULT = Limits()


class ListFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _table(listing: Listing) -> str:
    lines = []
    for e in listing.entries:
        link = f" -> {e.link}" if e.link is not None else ""
        lines.append(
            f"{e.filemode} {e.uid:>5}/{e.gid:<5} {e.size:>10} {e.sha256 or '-':64} {e.path}{link}  [{e.chain}]"
        )
    return "\n".join(lines) + "\n"


def ls(
    image: Path = typer.Argument(..., help="The firmware image (any container nospy knows, nested to --max-depth)."),
    *,
    fmt: ListFormat = typer.Option(ListFormat.TABLE, "--format", "-f", help="table or json."),
    max_bytes: int = typer.Option(_DEFAULT.max_bytes, "--max-bytes", help="Most bytes unpacked into memory."),
    max_ratio: float = typer.Option(_DEFAULT.max_ratio, "--max-ratio", help="Highest compression ratio accepted."),
    max_depth: int = typer.Option(_DEFAULT.max_depth, "--max-depth", help="Deepest nesting of containers unpacked."),
    timeout: float = typer.Option(_DEFAULT.timeout, "--timeout", help="Seconds the unpacking may take."),
) -> None:
    """List every file of a firmware image: device path, type, mode, owner, size, sha256, link, container chain."""
    limits = Limits(max_bytes=max_bytes, max_ratio=max_ratio, max_depth=max_depth, timeout=timeout)
    tree = open_image(image, limits)
    listing = list_tree(tree, image, tree.root_chain)
    if fmt is ListFormat.JSON:
        sys.stdout.write(listing.to_json(indent=1) + "\n")
    else:
        sys.stdout.write(_table(listing))
        for issue in listing.issues:
            where = f" at {issue.offset:#x}" if issue.offset is not None else ""
            err_console.print(f"[yellow]not unpacked:[/] {escape(issue.chain)}{where}: {escape(issue.message)}")
    if process_end.ends:
        # nothing is left to close (no file written, no database; the engine closed its reader threads):
        # the process ends without the interpreter's teardown of what the image was read into (~45 ms)
        process_end.hard = _nothing


def _nothing() -> None:
    pass
