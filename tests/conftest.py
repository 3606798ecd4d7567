from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def shared() -> Path:
    """The read-only real samples and vectors beside the checkout."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the real samples must sit beside the checkout")
    return SHARED


@pytest.fixture
def examples() -> Path:
    return ROOT / "examples"
