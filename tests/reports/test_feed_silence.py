"""What a new user saw on the demo store: a report asked for a date after the last outcome, or
dated by one lead scored after the data ended, judged every lead unconverted. The reports are
dated by the last outcome, and say when the outcomes stopped."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from features.schema import LeadSchema
from serving.cli import app as cli
from serving.settings import Settings
from store.snapshot_writer import ScoredBatch, ScoredLead, write_batches
from store.tables import OutcomeEvent
from tests.support import NOW, PII_KEY, TrainedSetup, open_store, report

STOPPED = "source_stopped_converting"


@pytest.fixture
def store(trained: TrainedSetup, tmp_path: Path) -> tuple[Settings, sessionmaker[Session]]:
    """A copy of the trained demo store (the session's is shared), with its registry."""
    source = Path(trained.settings.database_url.removeprefix("sqlite:///"))
    copy = tmp_path / "leadloop.db"
    shutil.copy(source, copy)
    settings = trained.settings.model_copy(update={"database_url": f"sqlite:///{copy}"})
    return settings, open_store(settings.database_url)


def last_outcome(sessions: sessionmaker[Session]) -> datetime:
    with sessions() as session:
        return session.scalar(select(func.max(OutcomeEvent.occurred_at)))


def stopped(alerts: list[dict]) -> set[str]:
    return {a["subject"] for a in alerts if a["kind"] == STOPPED}


def test_a_date_after_the_last_outcome_is_judged_as_of_that_outcome(
    store: tuple[Settings, sessionmaker[Session]], tmp_path: Path
) -> None:
    settings, sessions = store
    usual = report(settings, sessions, tmp_path / "usual")
    later = report(settings, sessions, tmp_path / "later", datetime(2027, 1, 15, tzinfo=UTC))
    assert later.kpis["as_of"] == usual.kpis["as_of"]
    assert later.kpis["as_of"].startswith(last_outcome(sessions).date().isoformat())
    assert stopped(later.alerts) == stopped(usual.alerts)  # not every source, as before
    assert len(stopped(later.alerts)) <= 1
    assert later.warnings and "2027-01-15" in later.warnings[0] and not usual.warnings
    stalls = [a for a in later.alerts if a["kind"] == "outcome_feed_stalled"]
    assert [a["subject"] for a in stalls][:1] == ["all sources"]
    assert stalls[0]["since"] == last_outcome(sessions).date().isoformat()
    assert not [a for a in usual.alerts if a["kind"] == "outcome_feed_stalled"]

    env = {"LEADLOOP_DATABASE_URL": settings.database_url,
           "LEADLOOP_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
           "LEADLOOP_PII_KEY": PII_KEY.decode()}  # fmt: skip
    said = CliRunner().invoke(
        cli, ["report", "--out", str(tmp_path / "cli"), "--as-of", "2027-01-15"], env=env
    )
    assert said.exit_code == 0, said.output
    assert "warning:" in said.output and "outcome feed stalled" in said.output


def test_one_score_after_the_data_ended_moves_nothing_but_says_the_feed_is_silent(
    store: tuple[Settings, sessionmaker[Session]], demo_schema: LeadSchema, tmp_path: Path
) -> None:
    settings, sessions = store
    before = report(settings, sessions, tmp_path / "before")
    later = NOW + timedelta(weeks=4)
    lead = {"lead_id": "after-the-demo", "source": "webinar", "created_at": later}
    scored = ScoredLead(lead=lead, probability=0.2, score=20, grade="C", reasons=None)
    with sessions.begin() as session:
        write_batches(session, demo_schema, PII_KEY, [ScoredBatch([scored], "1", later)])
    after = report(settings, sessions, tmp_path / "after")
    assert after.kpis["as_of"] == before.kpis["as_of"]
    for name in ("drift", "model_health"):
        kept = json.loads((tmp_path / "before" / f"{name}.json").read_text())
        again = json.loads((tmp_path / "after" / f"{name}.json").read_text())
        assert again == kept, name
    assert [a["subject"] for a in after.alerts if a["kind"] == "outcome_feed_stalled"][:1] == [
        "all sources"
    ]
