"""What a new user saw on the demo store: a report asked for a date after the last outcome, or
dated by one lead scored after the data ended, judged every lead unconverted. The reports are
dated by the last outcome, and say when the outcomes stopped."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from features.schema import LeadSchema
from serving.cli import app as cli
from serving.settings import Settings
from store.snapshot_writer import ScoredBatch, ScoredLead, write_batches
from store.tables import OutcomeEvent
from tests.support import NOW, PII_KEY, TrainedSetup, api_client, open_store, report

STOPPED = "source_stopped_converting"


@pytest.fixture
def store(trained: TrainedSetup, tmp_path: Path) -> tuple[Settings, sessionmaker[Session]]:
    """A copy of the trained demo store (the session's is shared), with its registry."""
    source = Path(trained.settings.database_url.removeprefix("sqlite:///"))
    copy = tmp_path / "leadloop.db"
    shutil.copy(source, copy)
    settings = trained.settings.model_copy(update={"database_url": f"sqlite:///{copy}"})
    return settings, open_store(settings.database_url)


def last_outcome(sessions: sessionmaker[Session], *where: Any) -> datetime:
    with sessions() as session:
        return session.scalar(select(func.max(OutcomeEvent.occurred_at)).where(*where))


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
    assert stopped(usual.alerts) <= {"paid_search"}  # the demo's one collapse, at most
    assert later.warnings and "2027-01-15" in later.warnings[0] and not usual.warnings
    stalls = [a for a in later.alerts if a["kind"] == "outcome_feed_stalled"]
    assert [a["subject"] for a in stalls] == ["all sources"]
    assert stalls[0]["since"] == last_outcome(sessions).date().isoformat()
    assert not [a for a in usual.alerts if a["kind"] == "outcome_feed_stalled"]

    assert later.kpis["asked_as_of"].startswith("2027-01-15") and usual.kpis["asked_as_of"] is None
    dashboard = (tmp_path / "later" / "index.html").read_text()
    assert "Asked for 2027-01-15" in dashboard
    page = (tmp_path / "later" / "source_quality.html").read_text()
    assert "Outcomes stopped arriving for longer than usual: all sources" in page
    served = settings.model_copy(update={"reports_dir": tmp_path / "later"})
    with api_client(served) as client:
        answer = client.get("/v1/alerts")
    assert answer.status_code == 200, answer.text
    assert "outcome_feed_stalled" in {a["kind"] for a in answer.json()["alerts"]}

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
    assert [a["subject"] for a in after.alerts if a["kind"] == "outcome_feed_stalled"] == [
        "all sources"
    ]


def test_a_report_dated_before_the_last_outcome_knows_nothing_after_it(
    store: tuple[Settings, sessionmaker[Session]], tmp_path: Path
) -> None:
    settings, sessions = store
    earlier = last_outcome(sessions) - timedelta(days=30)
    run = report(settings, sessions, tmp_path / "earlier", earlier)
    assert run.kpis["as_of"].startswith(earlier.date().isoformat()) and not run.warnings
    assert not [a for a in run.alerts if a["kind"] == "outcome_feed_stalled"]


def test_closing_outcomes_that_stop_while_hand_overs_go_on_are_a_stall(
    store: tuple[Settings, sessionmaker[Session]], tmp_path: Path
) -> None:
    """The CRM still posts hand-overs and contacts, but no won, lost or disqualified: the
    reports are dated by the last closing outcome, and say the feed went quiet."""
    settings, sessions = store
    cut = last_outcome(sessions) - timedelta(days=45)
    closing = OutcomeEvent.outcome.in_(["won", "lost", "disqualified"])
    with sessions.begin() as session:
        session.execute(delete(OutcomeEvent).where(closing, OutcomeEvent.occurred_at > cut))
        lifecycle_after = session.scalar(
            select(func.count()).where(~closing, OutcomeEvent.occurred_at > cut)
        )
    assert lifecycle_after > 0
    run = report(settings, sessions, tmp_path / "quiet")
    assert run.kpis["as_of"].startswith(last_outcome(sessions, closing).date().isoformat())
    assert [a["subject"] for a in run.alerts if a["kind"] == "outcome_feed_stalled"] == [
        "all sources"
    ]
    assert stopped(run.alerts) <= {"paid_search"}
