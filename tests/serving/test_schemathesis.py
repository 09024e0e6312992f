"""The API against its own OpenAPI document: schemathesis sends what the document allows, and
what it refuses, to every operation with an admin key; no answer is a 5xx, and every answer's
status and body are in the document (SQLite and PostgreSQL, the rules score serving a small
demo funnel).

The operations are fuzzed one by one with Hypothesis inside the test, not through
`schemathesis.pytest.from_fixture`: that integration sets `Node._nodeid`, which pytest 9 no
longer has.
"""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans

from features.schema import LeadSchema
from serving.app import create_app
from store.demo_funnel import generate_demo_funnel
from tests.support import api_key, bearer, make_settings, open_store, seed

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 100


def fuzz(operation: schemathesis.APIOperation, headers: dict[str, str]) -> None:
    """`EXAMPLES` valid and invalid requests to `operation`, each sending `headers`."""
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE, headers=headers),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE, headers=headers),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases)
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    answers_as_documented()


def test_every_answer_is_documented_and_none_is_a_server_error(
    database_url: str, tmp_path: Path, demo_schema: LeadSchema
) -> None:
    settings = make_settings(tmp_path, database_url)
    sessions = open_store(database_url)
    seed(sessions, generate_demo_funnel(400, seed=9), demo_schema)
    sessions.kw["bind"].dispose()
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    headers = bearer(api_key(settings))
    try:
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 9
        for operation in operations:
            fuzz(operation, headers)
    finally:
        shutdown_lifespans()  # schemathesis keeps the app started until the process ends
