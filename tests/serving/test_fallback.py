"""Without a champion, the service scores with the rules score, and says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from features.schema import LeadSchema
from store.demo_funnel import generate_demo_funnel
from tests.support import api_client, make_settings, open_store, seed
from training.fallback import FALLBACK_VERSION


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, demo_schema: LeadSchema
) -> Iterator[TestClient]:
    """A store with a few hundred closed leads and an MLflow store with no model at all."""
    directory: Path = tmp_path_factory.mktemp("fallback")
    settings = make_settings(directory)
    sessions = open_store(settings.database_url)
    seed(sessions, generate_demo_funnel(400, seed=9), demo_schema)
    sessions.kw["bind"].dispose()
    with api_client(settings) as client:
        yield client


def test_ready_and_marked_as_the_rules_score(client: TestClient) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == FALLBACK_VERSION
    card = client.get("/v1/model").json()
    assert card["model_version"] == FALLBACK_VERSION and card["model_kind"] == "rules"
    assert card["metrics"] == {} and card["n_holdout"] == 0


def test_rules_scores_come_with_reasons(client: TestClient) -> None:
    leads = [
        {"lead_id": "fb-1", "source": "referral", "lead_type": "SQL", "page_views": 30},
        {"lead_id": "fb-2", "source": "content_download", "lead_type": "MQL", "page_views": 0},
    ]
    response = client.post("/v1/scores", json={"leads": leads})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == FALLBACK_VERSION
    hot, cold = body["scores"]
    assert hot["probability"] > cold["probability"]
    assert {r["field"] for r in hot["reasons"]} <= {
        "source",
        "lead_type",
        "page_views",
        "email_opens",
        "form_fills",
        "demo_requested",
    }
    assert hot["reasons"] and hot["reasons"][0]["impact"] > 0
