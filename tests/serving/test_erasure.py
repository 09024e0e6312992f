"""Erasure on request: the lead's rows go everywhere, it stays out when it comes back, and free
text keeps no e-mail address or phone number (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from typer.testing import CliRunner

from features.pii import EMAIL_MASK, PHONE_MASK
from features.schema import LeadSchema
from serving.cli import app as cli
from store.demo_funnel import generate_demo_funnel
from store.erasure import erased_ids
from store.repository import training_frames, upsert_leads
from store.tables import ErasedLead, Lead, OutcomeEvent, ScoreSnapshot
from tests.support import PII_KEY, api_client, make_settings, open_store, seed

LEAD = {
    "lead_id": "to-forget",
    "created_at": "2026-10-01T09:00:00Z",
    "source": "webinar",
    "email": "forget.me@example.com",
}
KEPT = LEAD | {"lead_id": "to-keep", "email": "keep.me@example.com"}

Service = tuple[TestClient, sessionmaker[Session]]


def outcome(lead_id: str, event_id: str, **extra: str) -> dict[str, str]:
    return {
        "event_id": event_id,
        "lead_id": lead_id,
        "outcome": "lost",
        "occurred_at": "2026-10-10T09:00:00Z",
        **extra,
    }


@pytest.fixture
def service(database_url: str, tmp_path: Path, demo_schema: LeadSchema) -> Iterator[Service]:
    """A store with a few hundred closed demo leads (served by the rules score), and two leads
    scored and closed through the API."""
    settings = make_settings(tmp_path, database_url)
    sessions = open_store(database_url)
    try:
        seed(sessions, generate_demo_funnel(400, seed=9), demo_schema)
        with api_client(settings) as client:
            assert client.post("/v1/scores", json={"leads": [LEAD, KEPT]}).status_code == 200
            events = [outcome("to-forget", "f-1"), outcome("to-keep", "k-1")]
            assert client.post("/v1/outcomes", json={"outcomes": events}).status_code == 200
            yield client, sessions
    finally:
        sessions.kw["bind"].dispose()


def rows_of(session: Session, lead_id: str) -> int:
    return sum(
        session.scalar(select(func.count()).select_from(t).where(t.lead_id == lead_id)) or 0
        for t in (Lead, ScoreSnapshot, OutcomeEvent)
    )


def test_erasure_removes_every_row_and_keeps_the_lead_out(service: Service) -> None:
    client, sessions = service
    erased = client.delete("/v1/leads/to-forget")
    assert erased.status_code == 200 and erased.json() == {"snapshots": 1, "outcomes": 1}
    assert client.get("/v1/leads/to-forget").status_code == 404
    assert client.delete("/v1/leads/to-forget").status_code == 404

    again = client.post("/v1/scores", json={"leads": [LEAD]})
    assert again.status_code == 200 and again.json()["scores"][0]["lead_id"] == "to-forget"
    refused = client.post("/v1/outcomes", json={"outcomes": [outcome("to-forget", "f-2")]})
    assert refused.status_code == 422 and "erased" in refused.text

    with sessions() as session:
        assert rows_of(session, "to-forget") == 0
        assert rows_of(session, "to-keep") == 3
        assert erased_ids(session, ["to-forget", "to-keep"], PII_KEY) == {"to-forget"}
        tombstones = session.scalars(select(ErasedLead.lead_hash)).all()
        assert len(tombstones) == 1 and "to-forget" not in tombstones[0]
        assert "to-forget" not in set(training_frames(session).leads["lead_id"])


def test_free_text_is_stored_without_emails_or_phone_numbers(service: Service) -> None:
    client, sessions = service
    reason = "spoke to jane.doe@acme.com, call back on +44 20 7946 0958 in 2027"
    event = outcome("to-keep", "k-2", reason=reason)
    assert client.post("/v1/outcomes", json={"outcomes": [event]}).status_code == 200
    assert client.post("/v1/outcomes", json={"outcomes": [event]}).status_code == 200  # a replay
    with sessions() as session:
        stored = session.scalar(select(OutcomeEvent.reason).where(OutcomeEvent.event_id == "k-2"))
    assert stored == f"spoke to {EMAIL_MASK}, call back on {PHONE_MASK} in 2027"


def test_leadloop_erase(tmp_path: Path) -> None:
    """On SQLite: the command runs in this process, and would leave PostgreSQL connections to
    be closed by the garbage collector (the erasure itself is tested on both above)."""
    database_url = f"sqlite:///{tmp_path}/store.db"
    sessions = open_store(database_url)
    at = datetime(2026, 10, 1, tzinfo=UTC)
    row = {"lead_id": "cli-lead", "created_at": at, "source": None, "lead_type": None}
    with sessions.begin() as session:
        upsert_leads(session, [row | {"attributes": {}, "pii_hashes": {}, "updated_at": at}])
    env = {"LEADLOOP_DATABASE_URL": database_url}
    result = CliRunner().invoke(cli, ["erase", "cli-lead"], env=env)
    assert result.exit_code == 0 and "Erased lead 'cli-lead'" in result.output, result.output
    unknown = CliRunner().invoke(cli, ["erase", "cli-lead"], env=env)
    assert unknown.exit_code == 2 and "nothing erased" in unknown.output
    with sessions() as session:
        assert rows_of(session, "cli-lead") == 0
    sessions.kw["bind"].dispose()
