"""schemathesis against the OpenAPI document a real ``smtpmock serve`` publishes.

For every operation, valid and invalid requests generated from the schema (a bounded budget:
``SMTPMOCK_SCHEMATHESIS_EXAMPLES``, 25 per operation by default) must get no 500, only
documented status codes and content types, bodies that match the documented schema (the one
error shape included), and a 4xx for every request the schema says is invalid.

Two operations are held to the same checks but kept short: ``/api/v1/events`` is a stream that
never ends on its own (it is left out), and ``/api/v1/wait`` gets ``timeout=0`` whenever the
generated timeout was valid, so that a case never waits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

if os.environ.get("CI") != "true":
    pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.served import Served

EXAMPLES = int(os.environ.get("SMTPMOCK_SCHEMATHESIS_EXAMPLES", "25"))


def _never_waits(case: Any) -> None:
    if case.path != "/api/v1/wait":
        return
    query = dict(case.query or {})
    timeout = query.get("timeout", "5")
    try:
        valid = 0 <= float(timeout) <= 300
    except (TypeError, ValueError):
        valid = False
    if valid:
        query["timeout"] = "0"
        case.query = query


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Served]:
    """A server of its own: the fuzzing adds fault rules and deletes mail, which must not
    reach the tests that share the session's server."""
    with Served() as process:
        yield process


def _known(operation: Any) -> set[str]:
    return {p["name"] for p in operation.definition.raw.get("parameters", [])}


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _operations(served: Served) -> list[Any]:
    loaded = schemathesis.openapi.from_url(served.url + "/openapi.json")
    operations = [result.ok() for result in loaded.get_all_operations()]
    return [op for op in operations if op.path != "/api/v1/events"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi(fuzzed: Served, mode: GenerationMode) -> None:
    # Each operation's strategy is driven with hypothesis here, rather than through
    # schemathesis's pytest fixture loader (which pytest 9 broke: it renames the test node).
    operations = _operations(fuzzed)
    assert len(operations) >= 20  # the document really lists the API
    exercised: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: Any) -> None:
            _never_waits(case)
            checks = CHECKS
            if set(case.query or {}) - _known(case.operation):
                # Unknown query parameters are ignored, on purpose (Mailpit's clients send some
                # smtpmock has no use for, such as tz=): such a request is not refused.
                checks = [c for c in CHECKS if c is not negative_data_rejection]
            case.call_and_validate(base_url=fuzzed.url, timeout=30, checks=checks)

        try:
            call()
        except Unsatisfiable:
            # No invalid request exists for it (no parameter, or only free-form strings).
            assert mode is GenerationMode.NEGATIVE, operation.label
            continue
        exercised.append(operation.label)
    if mode is GenerationMode.NEGATIVE:
        assert len(exercised) >= 9, exercised
