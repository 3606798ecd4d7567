"""``nospy serve``: the web service evaluation teams use (FastAPI, server-rendered pages).

Upload an agreement and evidence, run the check as a background job (in a worker process) with
live progress, browse checks, verdicts and findings with their evidence, and the diff of two
checks' firmware images. Storage is SQLAlchemy (SQLite by default, PostgreSQL when
``NOSPY_DATABASE_URL`` says so) with Alembic migrations; uploaded files are kept content-addressed
on disk. Reads, writes and evidence downloads need an API token (reads not with ``public_read``).

One server process per database: at start-up it takes over the checks a previous process left
running (see `nospy.server.jobs.recover`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nospy.server.app import create_app
    from nospy.server.settings import Settings

__all__ = ["Settings", "create_app"]

# Loaded when asked for: the content cache imports nospy.server.db without the web application.
_LAZY = {"create_app": "nospy.server.app", "Settings": "nospy.server.settings"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
