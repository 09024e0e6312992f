"""The closed loop on each backend: score leads, post their outcomes, retrain on them.

The first champion is the session's model, registered in this test's own MLflow store; the
store holds a smaller funnel of the same generator, so the retrain (this test's own fit, once
per backend) is quick.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import CHAMPION, alias_version, mlflow_client
from serving.settings import Settings
from store.demo_funnel import DemoFunnel, generate_demo_funnel
from store.repository import training_frames
from tests.support import (
    TrainedSetup,
    api_client,
    make_settings,
    open_store,
    register_candidate,
    seed,
    train,
)
from training.dataset import LABEL, ORIGIN, build_training_set


@pytest.fixture(scope="module")
def loop_funnel() -> DemoFunnel:
    return generate_demo_funnel(2_000, seed=4)


def test_scored_leads_and_their_outcomes_feed_the_next_model(
    tmp_path: Path,
    database_url: str,
    demo_schema: LeadSchema,
    trained: TrainedSetup,
    loop_funnel: DemoFunnel,
) -> None:
    settings = make_settings(tmp_path, database_url)
    sessions = open_store(database_url)
    seed(sessions, loop_funnel, demo_schema)
    client = mlflow_client(settings.mlflow_tracking_uri)
    register_candidate(client, settings.tracking_target(), trained.run.candidate)
    with sessions() as session:
        closed_before = len(build_training_set(training_frames(session), demo_schema))
    try:
        check_the_loop(settings, sessions, demo_schema, closed_before)
    finally:
        sessions.kw["bind"].dispose()


def check_the_loop(
    settings: Settings,
    sessions: sessionmaker[Session],
    demo_schema: LeadSchema,
    closed_before: int,
) -> None:
    new_leads = [
        {
            "lead_id": f"loop-{i}",
            "email": f"person{i}@loop.example",
            "source": ["webinar", "referral", "outbound"][i % 3],
            "lead_type": "SQL" if i % 2 else "MQL",
            "page_views": i,
            "demo_requested": i % 4 == 0,
        }
        for i in range(40)
    ]
    with api_client(settings) as client:
        scored = client.post("/v1/scores", json={"leads": new_leads})
        assert scored.status_code == 200 and scored.json()["model_version"] == "1", scored.text
        closed_at = datetime.now(UTC) + timedelta(seconds=1)
        outcomes = [
            {
                "event_id": f"crm-{lead['lead_id']}",
                "lead_id": lead["lead_id"],
                "outcome": "won" if i % 3 == 1 else "lost",
                "occurred_at": closed_at.isoformat(),
            }
            for i, lead in enumerate(new_leads)
        ]
        posted = client.post("/v1/outcomes", json={"outcomes": outcomes})
        assert posted.json() == {"accepted": 40, "duplicates": 0}

    second = train(settings, sessions, datetime.now(UTC))
    assert second.model_version == "2"
    loop_ids = {lead["lead_id"] for lead in new_leads}
    assert loop_ids <= set(second.training_lead_ids)
    assert len(second.training_lead_ids) == closed_before + 40

    with sessions() as session:
        rows = build_training_set(training_frames(session), demo_schema)
    mine = rows[rows["lead_id"].isin(loop_ids)].set_index("lead_id")
    assert (mine[ORIGIN] == "snapshot").all()  # the features as scored, not re-read later
    assert mine.loc["loop-7", "page_views"] == 7 and mine.loc["loop-7", LABEL] == 1
    client_ = mlflow_client(settings.mlflow_tracking_uri)
    assert client_.get_model_version(settings.model_name, "2").run_id == second.run_id
    assert alias_version(client_, settings.model_name, CHAMPION) is not None
