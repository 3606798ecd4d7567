"""Consoles and option helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from nospy.agreement import Agreement

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class ProcessEnd:
    """How the process ends after the command. ``ends``: set by `nospy.cli.main`, the process ends
    when the command returns (never so for `nospy.cli.run` called in-process), so a command may leave
    work to end with it; it then sets ``hard`` to what ends that work, and `main` calls it and ends
    the process at once (`os._exit`), without the interpreter's exit handlers, which would wait."""

    ends: bool = False
    hard: Callable[[], None] | None = None


process_end = ProcessEnd()


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
