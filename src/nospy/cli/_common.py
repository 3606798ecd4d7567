"""Consoles and option helpers shared by the commands."""

from __future__ import annotations

from enum import StrEnum

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class TextOrJson(StrEnum):
    TEXT = "text"
    JSON = "json"
