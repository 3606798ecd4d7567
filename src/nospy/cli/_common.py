"""Consoles and option helpers shared by the commands."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console

    from nospy.agreement import Agreement


class _LazyConsole:
    """A rich `Console` made on first use: importing rich takes longer than ``nospy ls --format json``
    spends on a small image, and most runs of a command that prints JSON never need it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console  # noqa: PLC0415 - the point of this class

            self._console = Console(**self._options)
        return getattr(self._console, name)


console = cast("Console", _LazyConsole(highlight=False, soft_wrap=True))
err_console = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))


class TextOrJson(StrEnum):
    TEXT = "text"
    JSON = "json"


def read_agreement(path: Path, key: list[Path] | None) -> tuple[Agreement, list[str]]:
    """The agreement at ``path`` and the labels of the parties whose signatures were verified: every
    ``key`` must have signed it; without keys it is read unsigned, with a warning."""
    from nospy import agreement as agr  # noqa: PLC0415 - the agreement stack loads only when a command needs it
    from nospy.keys import read_verifier_key  # noqa: PLC0415

    if not key:
        err_console.print(
            "[yellow]warning:[/] the agreement's signatures were not verified (name the parties with --key)"
        )
        return agr.load(path), []
    verifiers = [read_verifier_key(k) for k in key]
    return agr.verify(agr.read_envelope(path), verifiers, str(path)), [v.label for v in verifiers]
