"""The report formats, apart from their renderers so the CLI can name them without importing those."""

from __future__ import annotations

from enum import StrEnum


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    HTML = "html"
    SARIF = "sarif"
    OSCAL = "oscal"
