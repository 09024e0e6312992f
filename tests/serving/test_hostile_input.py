"""Requests that once broke the loop: each gets a 4xx naming what is wrong, never a 5xx, on
SQLite and PostgreSQL; afterwards training and the reports still run on the store."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from features.schema import LeadSchema
from serving.settings import Settings
from store.demo_funnel import DemoFunnel
from tests.support import TrainedSetup, api_client, make_settings, open_store, report, seed, train

JSON = {"content-type": "application/json"}
LEAD = {"lead_id": "hostile-lead", "created_at": "2026-10-01T09:00:00Z", "source": "webinar"}
EVENT = {
    "event_id": "hostile-event",
    "lead_id": "hostile-lead",
    "outcome": "won",
    "occurred_at": "2026-10-20T09:00:00Z",
    "amount": 5000,
}

#: (what it is, lead or outcome changes, the field the 4xx must name).
HOSTILE_LEADS = [
    ("year 3000", {"created_at": "3000-01-01T00:00:00Z"}, "created_at"),
    ("overflowing offset", {"created_at": "9999-12-31T23:00:00-05:00"}, "created_at"),
    ("NUL in the id", {"lead_id": "a\x00b"}, "lead_id"),
    ("newline in the id", {"lead_id": "line\nbreak"}, "lead_id"),
    ("NUL in a category", {"industry": "retail\x00"}, "industry"),
    ("boolean as a number", {"page_views": True}, "page_views"),
    ("negative count", {"page_views": -3}, "page_views"),
]
HOSTILE_EVENTS = [
    ("year 1", {"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
    ("before its lead", {"occurred_at": "1995-01-01T00:00:00Z"}, "occurred_at"),
    ("NUL in the reason", {"reason": "call me\x00"}, "reason"),
    ("lone surrogate in the reason", {"reason": "call me \ud800"}, "reason"),
    ("NUL in the event id", {"event_id": "e\x00"}, "event_id"),
    ("boolean amount", {"amount": True}, "amount"),
    ("negative sequence", {"sequence": -1}, "sequence"),
    ("sequence as text", {"sequence": "7"}, "sequence"),
]


@pytest.fixture
def loop(
    database_url: str, tmp_path: Path, small_funnel: DemoFunnel, demo_schema: LeadSchema
) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    settings = make_settings(tmp_path, database_url)
    sessions = open_store(database_url)
    seed(sessions, small_funnel, demo_schema)
    yield settings, sessions
    sessions.kw["bind"].dispose()


def named_field(response: Any) -> str:
    assert response.status_code == 422, response.text
    return response.json()["detail"][0]["loc"][-1]


def test_hostile_requests_are_refused_by_name_and_the_loop_still_runs(
    loop: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = loop
    with api_client(settings) as client:
        assert client.post("/v1/scores", json={"leads": [LEAD]}).status_code == 200
        assert client.post("/v1/outcomes", json={"outcomes": [EVENT]}).status_code == 200
        for _, changes, field in HOSTILE_LEADS:
            response = client.post("/v1/scores", json={"leads": [LEAD | changes]})
            assert named_field(response) == field
        for _, changes, field in HOSTILE_EVENTS:
            event = EVENT | {"event_id": "another"} | changes
            # As a CRM's JSON carries it: a lone surrogate travels escaped, as "\ud800".
            body = json.dumps({"outcomes": [event]})
            response = client.post("/v1/outcomes", content=body, headers=JSON)
            assert named_field(response) == field
        changed = client.post("/v1/outcomes", json={"outcomes": [EVENT | {"outcome": "lost"}]})
        assert changed.status_code == 409
        for lead_id in ("a%00b", "line%0Abreak"):
            assert client.get(f"/v1/leads/{lead_id}").status_code == 404
        stored = client.get("/v1/leads/hostile-lead").json()
        assert stored["outcome"]["outcome"] == "won"
    run = train(settings, sessions)
    assert run.card.n_train > 0
    written = report(settings, sessions, settings.reports_dir)
    assert (written.out / "index.html").is_file()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=5,
)
TEXT_VALUES = st.text(max_size=40) | st.sampled_from(
    ["3000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "1e309", "-0", "NaN", "\x00", ""]
)


@pytest.fixture(scope="module")
def client(trained: TrainedSetup) -> Iterator[TestClient]:
    with api_client(trained.settings) as running:
        yield running


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["created_at", "page_views", "company_size", "industry", "source"]),
    value=JSON_VALUES | TEXT_VALUES,
)
def test_any_value_of_any_field_scores_or_is_refused(
    client: TestClient, field: str, value: Any
) -> None:
    """Only a 200 with a finite score, or a 422 naming the field: never a 5xx."""
    response = client.post("/v1/scores", json={"leads": [{"lead_id": "fuzzed", field: value}]})
    if response.status_code == 200:
        probability = response.json()["scores"][0]["probability"]
        assert math.isfinite(probability) and 0 <= probability <= 1
    else:
        assert named_field(response) == field
