"""The OpenAPI spec, fuzzed with schemathesis against a real `nospy serve`: no input may cause a
server error, and every response must match the spec (a bounded number of examples per operation,
valid and invalid inputs both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from serverlib import Server, new_token, running

Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Any]
LIMIT = 64 * 1024
EXAMPLES = 25


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    token = new_token(data, "fuzz")
    with running(data, {"NOSPY_MAX_UPLOAD_BYTES": str(LIMIT)}) as server:
        yield server, token


@pytest.fixture(scope="module")
def operations(live: tuple[Server, str]) -> dict[str, Operation]:
    server, _ = live
    spec = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    found = [result.ok() for result in spec.get_all_operations()]  # type: ignore[union-attr]  # an Err (invalid operation) fails here
    return {op.label: op for op in found}


OPERATIONS = [
    "POST /api/checks",
    "GET /api/checks",
    "GET /api/checks/{check_id}",
    "GET /api/checks/{check_id}/report",
    "GET /api/files/{sha256}",
    "POST /api/diffs",
    "GET /api/diffs/{diff_id}",
    "GET /healthz",
    "GET /api/history",
    "GET /api/history/{product}",
]


def test_every_operation_is_fuzzed(operations: dict[str, Operation]) -> None:
    assert sorted(operations) == sorted(OPERATIONS)


# /healthz and /api/history take nothing, so there is no invalid input to make for them
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in OPERATIONS if label not in ("GET /healthz", "GET /api/history")
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_operation_conforms_to_the_spec(
    label: str, mode: GenerationMode, operations: dict[str, Operation], live: tuple[Server, str]
) -> None:
    server, token = live

    # a schema-valid upload is still refused when its bytes are no agreement, and a schema-valid diff
    # request names checks that do not exist: the spec cannot say "a valid agreement" or "an existing
    # check", so for these two, acceptance of schema-valid data is not required
    refusable = ("POST /api/checks", "POST /api/diffs")
    excluded = [schemathesis.checks.positive_data_acceptance] if label in refusable else []

    @given(case=operations[label].as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case: Case) -> None:
        case.call_and_validate(
            base_url=server.url,
            headers={"Authorization": f"Bearer {token}"},
            excluded_checks=excluded,
            timeout=30,
        )

    run()
