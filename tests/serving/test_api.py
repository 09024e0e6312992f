"""Contract tests of the HTTP API over a real trained model, store and MLflow store."""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, inspect, text
from starlette.testclient import TestClient

from features.schema import LeadSchema
from serving.schemas import MAX_BATCH, ScoresOut
from store.records import hash_pii
from tests.support import PII_KEY, TrainedSetup, api_client, make_settings, stored_scores

EXAMPLE_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "score_request.json"
METRIC_NAMES = {"roc_auc", "pr_auc", "log_loss", "brier", "lift_at_10", "ece"}
NOT_MODEL_INPUTS = {"lead_id", "email", "full_name", "created_at", "sales_rating"}


@pytest.fixture(scope="module")
def client(trained: TrainedSetup) -> Iterator[TestClient]:
    """One running app over the trained setup: its lifespan loads the champion once."""
    with api_client(trained.settings) as running:
        yield running


@pytest.fixture(scope="module")
def empty_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app whose MLflow store has never seen a training run."""
    settings = make_settings(tmp_path_factory.mktemp("untrained"))
    with api_client(settings) as running:
        yield running


@pytest.fixture(scope="module")
def lenient_client(trained: TrainedSetup) -> Iterator[TestClient]:
    """Like `client`, but a server error comes back as a 500 response instead of raising."""
    with api_client(trained.settings, raise_server_exceptions=False) as running:
        yield running


def new_id(prefix: str = "api") -> str:
    """A lead or event id no other test uses, so tests stay independent in the shared store."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def example_request() -> dict[str, Any]:
    """The bundled example, with fresh lead ids (the store is shared by the module's tests)."""
    body = json.loads(EXAMPLE_REQUEST.read_text(encoding="utf-8"))
    for lead in body["leads"]:
        lead["lead_id"] = new_id(lead["lead_id"])
    return body


def score(client: TestClient, *leads: dict[str, Any]) -> dict[str, Any]:
    """POST leads for scoring and return the parsed 200 response."""
    response = client.post("/v1/scores", json={"leads": list(leads)})
    assert response.status_code == 200, response.text
    return response.json()


def scored_lead(client: TestClient, **fields: Any) -> str:
    """Score one new lead so outcomes can refer to it; return its id."""
    lead_id = new_id("outcome-lead")
    created = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    score(client, {"lead_id": lead_id, "source": "webinar", "created_at": created} | fields)
    return lead_id


def outcome_event(lead_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid `won` outcome event for `lead_id`, occurring a day ago."""
    return {
        "event_id": new_id("event"),
        "lead_id": lead_id,
        "outcome": "won",
        "occurred_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "amount": 12_500.0,
        "reason": "signed the annual plan",
    } | overrides


def error_locs(response: Any) -> list[list[Any]]:
    """The `loc` of every validation error of a 422 response."""
    assert response.status_code == 422, response.text
    return [error["loc"] for error in response.json()["detail"]]


# --- scoring ----------------------------------------------------------------------------------


def test_scores_example_request(
    client: TestClient, trained: TrainedSetup, demo_schema: LeadSchema
) -> None:
    """The documented example scores with the served version, one well-formed score per lead."""
    body = example_request()
    result = score(client, *body["leads"])

    assert result["model_version"] == trained.run.model_version
    assert [s["lead_id"] for s in result["scores"]] == [x["lead_id"] for x in body["leads"]]
    model_fields = {f.name for f in demo_schema.model_fields_in_order}
    assert model_fields.isdisjoint(NOT_MODEL_INPUTS)
    # What the service answers is what the registered champion itself scores.
    expected = trained.run.candidate.scorer.score(body["leads"])
    for lead, scored, own in zip(body["leads"], result["scores"], expected, strict=True):
        assert scored["probability"] == pytest.approx(own.probability)
        assert (scored["score"], scored["grade"]) == (own.score, own.grade)
        assert scored["reasons"], "a lead with engagement data should have reasons"
        for reason in scored["reasons"]:
            assert set(reason) == {"field", "value", "impact", "text"} and reason["text"]
            assert reason["field"] in model_fields
            assert reason["value"] == lead.get(reason["field"])
            assert reason["impact"] != 0


def test_reasons_list_positive_impacts_before_negative_ones(client: TestClient) -> None:
    """Reps read the reasons top-down: raisers first (largest first), then lowerers."""
    leads = example_request()["leads"] + [
        {"lead_id": new_id(), "page_views": 0, "email_opens": 0, "demo_requested": False},
        {"lead_id": new_id(), "page_views": 60, "form_fills": 5, "demo_requested": True},
    ]
    result = score(client, *leads)
    mixed = 0
    for scored in result["scores"]:
        impacts = [reason["impact"] for reason in scored["reasons"]]
        positive = [i for i in impacts if i > 0]
        negative = [i for i in impacts if i < 0]
        assert impacts == positive + negative
        assert positive == sorted(positive, reverse=True)
        assert negative == sorted(negative)
        mixed += bool(positive and negative)
    assert mixed, "no lead had reasons in both directions: the ordering went untested"


def test_scored_lead_is_stored_with_its_score(client: TestClient, trained: TrainedSetup) -> None:
    """GET /v1/leads/{id} returns exactly what was just served, from the store."""
    body = example_request()
    result = score(client, *body["leads"])

    for lead, scored in zip(body["leads"], result["scores"], strict=True):
        response = client.get(f"/v1/leads/{lead['lead_id']}")
        assert response.status_code == 200, response.text
        stored = response.json()
        assert stored["lead_id"] == lead["lead_id"]
        assert stored["source"] == lead["source"]
        assert stored["lead_type"] == lead["lead_type"]
        assert stored["outcome"] is None
        latest = stored["latest_score"]
        assert latest["model_version"] == trained.run.model_version
        assert latest["probability"] == scored["probability"]
        assert latest["score"] == scored["score"]
        assert latest["grade"] == scored["grade"]
        assert latest["reasons"] == scored["reasons"]
    first = client.get(f"/v1/leads/{body['leads'][0]['lead_id']}").json()
    assert datetime.fromisoformat(first["created_at"]) == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "body"), [("?reasons=false", {}), ("", {"reasons": False})], ids=["query", "body"]
)
def test_a_score_alone_is_the_same_score_without_reasons(
    client: TestClient, query: str, body: dict[str, Any]
) -> None:
    """Asked without reasons, the same probability (from the margin, not the contributions),
    no reasons in the answer, and none in the snapshot the lead is read back with."""
    leads = [lead | {"lead_id": new_id()} for lead in example_request()["leads"]]
    with_reasons = score(client, *leads)["scores"]
    response = client.post(f"/v1/scores{query}", json={"leads": leads} | body)
    assert response.status_code == 200, response.text
    alone = response.json()["scores"]
    for full, bare in zip(with_reasons, alone, strict=True):
        assert full["reasons"] and bare["reasons"] is None
        assert bare["probability"] == pytest.approx(full["probability"], abs=1e-12)
        assert (bare["score"], bare["grade"]) == (full["score"], full["grade"])
    read_back = client.get(f"/v1/leads/{leads[0]['lead_id']}").json()["latest_score"]
    assert read_back["reasons"] is None
    assert read_back["probability"] == alone[0]["probability"]


@pytest.mark.parametrize("query", ["", "?reasons=false"])
def test_the_scores_answer_is_what_the_api_documents(client: TestClient, query: str) -> None:
    """The route answers its scores without FastAPI validating them again: they must still be
    exactly the documented `ScoresOut`, no field more or less."""
    leads = [lead | {"lead_id": new_id()} for lead in example_request()["leads"]]
    response = client.post(f"/v1/scores{query}", json={"leads": leads})
    assert response.status_code == 200, response.text
    answer = ScoresOut.model_validate_json(response.content)
    assert answer.model_dump(mode="json") == response.json()
    assert [s.lead_id for s in answer.scores] == [lead["lead_id"] for lead in leads]


def test_reasons_must_be_a_boolean(client: TestClient) -> None:
    response = client.post("/v1/scores", json={"leads": [{"lead_id": "x"}], "reasons": "no"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "reasons"]


def test_store_holds_only_hashed_pii(client: TestClient, trained: TrainedSetup) -> None:
    """Raw e-mails and names never reach the store; their keyed hashes do (for joins)."""
    email = f"{new_id('pii')}@northwind.example"
    full_name = f"Hidden {uuid.uuid4().hex[:8]} Person"
    lead_id = new_id("pii-lead")
    score(client, {"lead_id": lead_id, "email": email, "full_name": full_name, "page_views": 3})
    stored_scores(client)
    engine = create_engine(trained.settings.database_url)
    try:
        with engine.connect() as connection:
            for table in ("leads", "score_snapshots"):
                columns = [c["name"] for c in inspect(connection).get_columns(table)]
                rows = connection.execute(text(f"SELECT * FROM {table}")).all()
                assert rows, f"{table} is empty"
                for row in rows:
                    for column, value in zip(columns, row, strict=True):
                        assert email not in str(value), f"raw e-mail in {table}.{column}"
                        assert full_name not in str(value), f"raw name in {table}.{column}"
            stored = connection.execute(
                text("SELECT pii_hashes FROM leads WHERE lead_id = :id"), {"id": lead_id}
            ).scalar_one()
    finally:
        engine.dispose()
    hashes = json.loads(stored) if isinstance(stored, str) else stored
    assert hashes == {
        "email": hash_pii(email, PII_KEY),
        "full_name": hash_pii(full_name, PII_KEY),
    }


def test_score_ignores_pii_and_fields_unknown_at_scoring(client: TestClient) -> None:
    """Invariance: name, e-mail and the sales-filled rating never move the probability."""
    base = {
        "source": "referral",
        "lead_type": "SQL",
        "industry": "software",
        "company_size": 120,
        "page_views": 9,
        "email_opens": 3,
        "form_fills": 1,
        "demo_requested": True,
    }
    leads = [
        base | {"lead_id": new_id(), "email": "ada@example.com", "full_name": "Ada Lovelace"},
        base | {"lead_id": new_id(), "email": "zz@other.example", "full_name": "Zed Zimmer"},
        base | {"lead_id": new_id(), "sales_rating": "hot"},
        base | {"lead_id": new_id(), "sales_rating": "cold"},
    ]
    result = score(client, *leads)
    probabilities = {s["probability"] for s in result["scores"]}
    assert len(probabilities) == 1, probabilities
    assert len({json.dumps(s["reasons"]) for s in result["scores"]}) == 1


def test_missing_values_and_unseen_categories_are_scored(client: TestClient) -> None:
    """Leads are scored through the model's missing-value branches rather than refused."""
    bare = new_id("bare")
    pigeon = new_id("pigeon")
    result = score(
        client,
        {"lead_id": bare},
        {"lead_id": pigeon, "source": "carrier_pigeon", "country": "Atlantis", "page_views": 4},
    )
    assert [s["lead_id"] for s in result["scores"]] == [bare, pigeon]
    for scored in result["scores"]:
        assert 0.0 <= scored["probability"] <= 1.0
    stored = client.get(f"/v1/leads/{pigeon}").json()
    assert stored["source"] == "carrier_pigeon"


# --- scoring: refused input -------------------------------------------------------------------


def test_unknown_field_is_refused_by_name(client: TestClient) -> None:
    """A misspelt field must not be silently dropped: the 422 names it."""
    response = client.post(
        "/v1/scores", json={"leads": [{"lead_id": new_id(), "favourite_colour": "teal"}]}
    )
    assert [loc[-1] for loc in error_locs(response)] == ["favourite_colour"]
    assert error_locs(response)[0][:3] == ["body", "leads", 0]


def test_wrong_type_is_refused_by_name(client: TestClient) -> None:
    """A value of the wrong type is refused, not scored as missing."""
    response = client.post(
        "/v1/scores", json={"leads": [{"lead_id": new_id(), "page_views": "lots"}]}
    )
    assert [loc[-1] for loc in error_locs(response)] == ["page_views"]


def test_missing_lead_id_is_refused(client: TestClient) -> None:
    """Without an id a score cannot be stored or joined to its outcome later."""
    response = client.post("/v1/scores", json={"leads": [{"page_views": 3}]})
    assert error_locs(response) == [["body", "leads", 0, "lead_id"]]


def test_more_than_a_thousand_leads_are_refused(client: TestClient) -> None:
    """The batch cap bounds a request's latency; nothing of a refused batch is stored."""
    leads = [{"lead_id": new_id()} for _ in range(MAX_BATCH + 1)]
    response = client.post("/v1/scores", json={"leads": leads})
    assert error_locs(response) == [["body", "leads"]]
    assert client.get(f"/v1/leads/{leads[0]['lead_id']}").status_code == 404


def test_empty_batch_is_refused(client: TestClient) -> None:
    """An empty batch is a client bug, not a successful no-op."""
    response = client.post("/v1/scores", json={"leads": []})
    assert error_locs(response) == [["body", "leads"]]


def test_invalid_json_is_refused(client: TestClient) -> None:
    """A truncated body is the client's error (422), never a server error."""
    response = client.post(
        "/v1/scores",
        content=b'{"leads": [{"lead_id": "x",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/scores", '{"leads": [{"lead_id": "nan-lead", "page_views": NaN}]}', "page_views"),
        (
            "/v1/scores",
            '{"leads": [{"lead_id": "inf-lead", "company_size": Infinity}]}',
            "company_size",
        ),
        (
            "/v1/outcomes",
            '{"outcomes": [{"event_id": "nan-event", "lead_id": "demo-000000", "outcome": "won", '
            '"occurred_at": "2026-10-01T12:00:00Z", "amount": NaN}]}',
            "amount",
        ),
    ],
    ids=["scores-nan", "scores-infinity", "outcomes-nan"],
)
def test_non_finite_numbers_are_refused_by_name(
    lenient_client: TestClient, path: str, body: str, field: str
) -> None:
    """A client's NaN (a pandas missing value sent by `json.dumps`) is bad input, not a crash."""
    response = lenient_client.post(
        path, content=body.encode(), headers={"content-type": "application/json"}
    )
    assert [loc[-1] for loc in error_locs(response)] == [field]


# --- outcomes ---------------------------------------------------------------------------------


def test_outcomes_are_accepted_and_readable(client: TestClient) -> None:
    """An accepted outcome shows up on the lead it closes."""
    lead_id = scored_lead(client)
    event = outcome_event(lead_id)
    response = client.post("/v1/outcomes", json={"outcomes": [event]})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}

    outcome = client.get(f"/v1/leads/{lead_id}").json()["outcome"]
    assert outcome["event_id"] == event["event_id"]
    assert outcome["outcome"] == "won"
    assert outcome["amount"] == 12_500.0
    assert outcome["reason"] == "signed the annual plan"
    assert datetime.fromisoformat(outcome["occurred_at"]) == datetime.fromisoformat(
        event["occurred_at"]
    )


def test_a_redelivered_event_is_answered_alike_and_a_changed_one_is_a_conflict(
    client: TestClient,
) -> None:
    """Webhooks retry: the same event again gets the same answer and stores nothing more; the
    same event_id saying something else is a 409, and the stored outcome stays."""
    lead_id = scored_lead(client)
    event = outcome_event(lead_id)
    first = client.post("/v1/outcomes", json={"outcomes": [event]})
    replay = client.post("/v1/outcomes", json={"outcomes": [event]})
    assert first.json() == replay.json() == {"accepted": 1, "duplicates": 0}

    altered = event | {"outcome": "lost", "amount": 1.0, "reason": "changed my mind"}
    second = client.post("/v1/outcomes", json={"outcomes": [altered]})
    assert second.status_code == 409, second.text
    assert event["event_id"] in second.json()["detail"]

    outcome = client.get(f"/v1/leads/{lead_id}").json()["outcome"]
    assert (outcome["outcome"], outcome["amount"], outcome["reason"]) == (
        "won",
        12_500.0,
        "signed the annual plan",
    )


def test_duplicate_event_within_one_batch_is_stored_once(client: TestClient) -> None:
    """A batch repeating an event_id stores it once and counts the repeat as a duplicate."""
    lead_id = scored_lead(client)
    event = outcome_event(lead_id)
    other = outcome_event(lead_id, outcome="lost", amount=None, reason=None)
    response = client.post("/v1/outcomes", json={"outcomes": [event, event, other]})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 1}
    again = client.post("/v1/outcomes", json={"outcomes": [event, other]})
    assert again.json() == {"accepted": 2, "duplicates": 0}


def test_unknown_lead_refuses_the_whole_batch(client: TestClient) -> None:
    """A batch is stored whole or not at all; the 422 names the offending item."""
    lead_id = scored_lead(client)
    valid = outcome_event(lead_id)
    unknown = outcome_event(new_id("never-scored"))
    response = client.post("/v1/outcomes", json={"outcomes": [valid, unknown]})
    assert error_locs(response) == [["body", "outcomes", 1, "lead_id"]]
    assert unknown["lead_id"] in response.json()["detail"][0]["msg"]

    assert client.get(f"/v1/leads/{lead_id}").json()["outcome"] is None
    retry = client.post("/v1/outcomes", json={"outcomes": [valid]})
    assert retry.json() == {"accepted": 1, "duplicates": 0}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"outcome": "maybe"}, "outcome"),
        ({"occurred_at": "2026-10-01T12:00:00"}, "occurred_at"),
        ({"occurred_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}, "occurred_at"),
        ({"amount": -5.0}, "amount"),
    ],
    ids=["unknown-outcome", "naive-time", "far-future", "negative-amount"],
)
def test_invalid_outcome_is_refused_by_name(
    client: TestClient, override: dict[str, Any], field: str
) -> None:
    """An unusable event is refused by name, and the lead keeps no outcome."""
    lead_id = scored_lead(client)
    response = client.post("/v1/outcomes", json={"outcomes": [outcome_event(lead_id, **override)]})
    locs = error_locs(response)
    assert [loc[:3] for loc in locs] == [["body", "outcomes", 0]]
    assert locs[0][-1] == field
    assert client.get(f"/v1/leads/{lead_id}").json()["outcome"] is None


# --- reading back and operations --------------------------------------------------------------


def test_unknown_lead_is_404(client: TestClient) -> None:
    """An id the store never saw is a 404 naming it, not an empty lead."""
    response = client.get("/v1/leads/unknown")
    assert response.status_code == 404
    assert "unknown" in response.json()["detail"]


def test_imported_lead_shows_its_outcome_without_a_score(
    client: TestClient, trained: TrainedSetup
) -> None:
    """Leads loaded from the CRM (never scored) read back with their outcome and no score."""
    event = trained.funnel.outcomes.iloc[0]
    response = client.get(f"/v1/leads/{event['lead_id']}")
    assert response.status_code == 200, response.text
    lead = response.json()
    assert lead["latest_score"] is None
    assert lead["outcome"]["event_id"] == event["event_id"]
    assert lead["outcome"]["outcome"] == event["outcome"]


def test_lead_id_with_a_slash_reads_back(client: TestClient) -> None:
    """Any id the API accepts for scoring must be readable afterwards."""
    lead_id = f"crm/{new_id()}"
    score(client, {"lead_id": lead_id, "page_views": 2})
    response = client.get(f"/v1/leads/{quote(lead_id, safe='')}")
    assert response.status_code == 200, response.text
    assert response.json()["lead_id"] == lead_id


def test_model_card(client: TestClient, trained: TrainedSetup) -> None:
    """The served version's card: identity, windows in time order and holdout metrics."""
    response = client.get("/v1/model")
    assert response.status_code == 200, response.text
    card = response.json()
    assert card["model_version"] == trained.run.model_version
    assert card["run_id"] == trained.run.run_id
    train_window, holdout_window = card["training_window"], card["holdout_window"]
    train_start = datetime.fromisoformat(train_window["start"])
    train_end = datetime.fromisoformat(train_window["end"])
    holdout_start = datetime.fromisoformat(holdout_window["start"])
    holdout_end = datetime.fromisoformat(holdout_window["end"])
    assert train_start < train_end <= holdout_start < holdout_end
    assert set(card["metrics"]) == METRIC_NAMES
    assert card["metrics"] == pytest.approx(trained.run.metrics)
    assert card["n_train"] == trained.run.card.n_train
    assert card["n_holdout"] == trained.run.card.n_holdout


def test_health_and_readiness(client: TestClient, trained: TrainedSetup) -> None:
    """Orchestrators route traffic on /readyz, which names the version being served."""
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "model_version": trained.run.model_version,
        "registry_champion": trained.run.model_version,
        "stale": False,
    }


def test_without_a_champion_the_app_is_alive_but_not_ready(empty_client: TestClient) -> None:
    """Before the first training the service starts, says why it is not ready, refuses scores."""
    assert empty_client.get("/healthz").status_code == 200
    ready = empty_client.get("/readyz")
    assert ready.status_code == 503
    assert "champion" in ready.json()["detail"]

    response = empty_client.post("/v1/scores", json={"leads": [{"lead_id": new_id()}]})
    assert response.status_code == 503
    assert "no champion model" in response.json()["detail"]
    assert empty_client.get("/v1/model").status_code == 503
    assert empty_client.get("/v1/leads/x").status_code == 404


def test_outcomes_without_a_champion_still_validate_leads(empty_client: TestClient) -> None:
    """Outcome ingestion does not need a model; an unknown lead is still refused by name."""
    response = empty_client.post("/v1/outcomes", json={"outcomes": [outcome_event("x")]})
    assert error_locs(response) == [["body", "outcomes", 0, "lead_id"]]


def test_openapi_describes_the_lead_schema(client: TestClient, demo_schema: LeadSchema) -> None:
    """Clients generate code from the OpenAPI document: it must list the tenant's fields."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schemas = response.json()["components"]["schemas"]
    scores_in, lead_in = schemas["ScoresIn"], schemas["LeadIn"]
    assert scores_in["additionalProperties"] is False
    assert scores_in["properties"]["leads"]["items"] == {"$ref": "#/components/schemas/LeadIn"}
    assert scores_in["properties"]["leads"]["maxItems"] == MAX_BATCH
    assert lead_in["additionalProperties"] is False
    assert lead_in["required"] == ["lead_id"]
    expected = {f.name for f in demo_schema.fields} | {"lead_id"}
    assert set(lead_in["properties"]) == expected
    assert "page_views" in lead_in["properties"]


def test_snapshots_keep_every_model_field_and_rescoring_keeps_the_stored_row(
    client: TestClient, trained: TrainedSetup, demo_schema: LeadSchema
) -> None:
    """The next model may use a field this one does not read; and a re-score after the
    outcome must not rewrite the row training falls back on."""
    from sqlalchemy import select

    from store.tables import Lead, ScoreSnapshot

    lead_id = new_id()
    score(client, {"lead_id": lead_id, "page_views": 3, "industry": "retail"})
    score(client, {"lead_id": lead_id, "page_views": 99, "industry": "software"})
    stored_scores(client)
    with trained.sessions() as session:
        snapshots = session.scalars(
            select(ScoreSnapshot).where(ScoreSnapshot.lead_id == lead_id)
        ).all()
        stored = session.get(Lead, lead_id)
    assert len(snapshots) == 2
    model_fields = {f.name for f in demo_schema.model_fields_in_order}
    assert all(set(s.features) == model_fields for s in snapshots)
    assert sorted(s.features["page_views"] for s in snapshots) == [3, 99]
    assert stored.attributes["page_views"] == 3 and stored.attributes["industry"] == "retail"


def test_lifecycle_events_are_accepted_and_shown_on_the_lead(client: TestClient) -> None:
    lead_id = scored_lead(client, page_views=4, created_at="2026-10-30T08:00:00Z")
    events = [
        {
            "event_id": f"{lead_id}-h",
            "lead_id": lead_id,
            "outcome": "handed_over",
            "occurred_at": "2026-11-01T09:00:00Z",
        },
        {
            "event_id": f"{lead_id}-c",
            "lead_id": lead_id,
            "outcome": "contacted",
            "occurred_at": "2026-11-01T13:30:00Z",
        },
    ]
    assert client.post("/v1/outcomes", json={"outcomes": events}).json() == {
        "accepted": 2,
        "duplicates": 0,
    }
    lead = client.get(f"/v1/leads/{lead_id}").json()
    assert lead["handed_over"] == "2026-11-01T09:00:00Z"
    assert lead["contacted"] == "2026-11-01T13:30:00Z"
    assert lead["outcome"] is None  # a lifecycle step does not close the lead


def test_alerts_before_any_report_say_how_to_get_them(empty_client: TestClient) -> None:
    response = empty_client.get("/v1/alerts")
    assert response.status_code == 404 and "make report" in response.json()["detail"]


def test_first_contact_counts_only_after_the_hand_over(client: TestClient) -> None:
    """An SDR call before marketing's hand-over is not sales' follow-up."""
    lead_id = scored_lead(client, page_views=2, created_at="2026-10-30T08:00:00Z")
    events = [
        {
            "event_id": f"{lead_id}-{kind}-{at}",
            "lead_id": lead_id,
            "outcome": kind,
            "occurred_at": f"2026-11-01T{at}:00:00Z",
        }
        for kind, at in [("contacted", "08"), ("handed_over", "09"), ("contacted", "15")]
    ]
    client.post("/v1/outcomes", json={"outcomes": events})
    lead = client.get(f"/v1/leads/{lead_id}").json()
    assert (lead["handed_over"], lead["contacted"]) == (
        "2026-11-01T09:00:00Z",
        "2026-11-01T15:00:00Z",
    )


def test_scores_the_store_cannot_take_get_a_503_and_none_is_lost(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    """While an import holds SQLite's write lock, the writer cannot store: with a queue of one
    lead, the second request waits `store_wait_seconds`, then gets a 503; once the lock is
    released, what was answered is stored."""
    from sqlalchemy import create_engine, func, select, text

    from store.tables import ScoreSnapshot

    url = f"sqlite:///{tmp_path}/store.db"
    settings = trained.settings.model_copy(
        update={"database_url": url, "snapshot_queue": 1, "store_wait_seconds": 0.3}
    )
    with api_client(settings) as client:
        blocker = create_engine(url).connect()
        blocker.execute(text("BEGIN IMMEDIATE"))
        first = client.post("/v1/scores", json={"leads": [{"lead_id": "busy-1"}]})
        second = client.post("/v1/scores", json={"leads": [{"lead_id": "busy-2"}]})
        blocker.execute(text("ROLLBACK"))
        blocker.close()
        assert first.status_code == 200, first.text
        assert second.status_code == 503 and "waiting for the store" in second.text
        stored_scores(client)
        with create_engine(url).connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(ScoreSnapshot))
    assert stored == 1


def test_a_lead_scored_a_moment_ago_is_read_back_closed_and_erased(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    """The writer holds scores for its linger (here 2 s); the routes that read what scoring
    stored wait for them rather than answering 404 or refusing the outcome."""
    url = f"sqlite:///{tmp_path}/store.db"
    settings = trained.settings.model_copy(
        update={"database_url": url, "snapshot_linger_seconds": 2.0}
    )
    with api_client(settings) as client:
        created = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        score(client, {"lead_id": "fresh-1", "created_at": created})
        assert client.get("/v1/leads/fresh-1").status_code == 200
        score(client, {"lead_id": "fresh-2", "created_at": created})
        posted = client.post("/v1/outcomes", json={"outcomes": [outcome_event("fresh-2")]})
        assert posted.status_code == 200, posted.text
        score(client, {"lead_id": "fresh-3", "created_at": created})
        assert client.delete("/v1/leads/fresh-3").json() == {"snapshots": 1, "outcomes": 0}


def test_the_objects_of_start_up_are_kept_out_of_full_collections(
    trained: TrainedSetup,
) -> None:
    """A full garbage collection walks every object in the process (about 180 ms with the
    libraries and a model loaded, no request answered meanwhile): the service freezes what
    start-up made, so that such a pass only walks what came later."""
    gc.unfreeze()
    with api_client(trained.settings) as running:
        assert running.get("/healthz").status_code == 200
        frozen = gc.get_freeze_count()
        assert frozen > 100_000
        assert len(gc.get_objects(generation=2)) < frozen


def test_reasons_come_in_the_schemas_words(client: TestClient, demo_schema: LeadSchema) -> None:
    """Every field the model reads has phrases in the demo schema; each reason carries its
    phrase ("Asked for a demo"), numbers where they stand among the training leads."""
    assert all(f.phrases for f in demo_schema.model_fields_in_order)
    lead = {
        "lead_id": new_id(),
        "source": "referral",
        "demo_requested": True,
        "page_views": 500,
        "company_size": None,
    }
    reasons = score(client, lead)["scores"][0]["reasons"]
    texts = {reason["field"]: reason["text"] for reason in reasons}
    assert texts["demo_requested"] == "Asked for a demo"
    assert texts["source"] == "Referred by a customer"
    assert texts["page_views"] == "500 page views (top 10%)"
    assert texts["company_size"] == "Company size unknown"
    stored = client.get(f"/v1/leads/{lead['lead_id']}").json()["latest_score"]["reasons"]
    assert [r["text"] for r in stored] == [r["text"] for r in reasons]


def test_a_leads_history_lists_its_scores_newest_first_a_page_at_a_time(
    client: TestClient,
) -> None:
    lead_id = new_id("hist") + "/with-a-slash"  # ids may hold slashes
    answers = [
        score(client, {"lead_id": lead_id, "page_views": views, "demo_requested": views > 5})
        for views in (0, 8, 40)
    ]
    page = client.get(f"/v1/leads/{quote(lead_id)}/history", params={"limit": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["lead_id"] == lead_id
    expected = [
        (a["model_version"], a["scores"][0]["score"], a["scores"][0]["grade"])
        for a in reversed(answers)
    ]
    newest = [(s["model_version"], s["score"], s["grade"]) for s in body["scores"]]
    assert newest == expected[:2]
    times = [datetime.fromisoformat(s["scored_at"]) for s in body["scores"]]
    assert times == sorted(times, reverse=True)
    cursor = {"before": body["next_before"], "before_id": body["next_before_id"]}
    older = client.get(f"/v1/leads/{quote(lead_id)}/history", params=cursor).json()
    assert [(s["model_version"], s["score"], s["grade"]) for s in older["scores"]] == expected[2:]
    assert older["next_before"] is None
    assert client.get(f"/v1/leads/{quote(lead_id)}").json()["lead_id"] == lead_id


def test_history_pages_keep_scores_of_one_time(client: TestClient) -> None:
    """A request that scores a lead twice stores both scores at one time: paging one at a time
    still returns each once."""
    lead_id = new_id("twice")
    score(client, {"lead_id": lead_id, "page_views": 1}, {"lead_id": lead_id, "page_views": 30})
    seen, params = [], {"limit": 1}
    while True:
        page = client.get(f"/v1/leads/{lead_id}/history", params=params).json()
        seen += page["scores"]
        if page["next_before"] is None:
            break
        params |= {"before": page["next_before"], "before_id": page["next_before_id"]}
    assert len(seen) == 2 and seen[0]["scored_at"] == seen[1]["scored_at"]
    assert {s["score"] for s in seen} == {
        s["score"] for s in client.get(f"/v1/leads/{lead_id}/history").json()["scores"]
    }


@pytest.mark.parametrize(
    ("query", "status", "where"),
    [
        ("", 404, None),
        ("?limit=0", 422, "limit"),
        ("?limit=1001", 422, "limit"),
        ("?before=2026-11-01T10:00:00", 422, "before"),  # a time without its zone
        ("?before=yesterday", 422, "before"),
        ("?before=9999-12-31T23:00:00-05:00", 422, "before"),  # no UTC time
        ("?before=2026-11-01T10:00:00Z&before_id=99999999999999999999", 422, "before_id"),
    ],
)
def test_history_refusals_name_what_is_wrong(
    client: TestClient, query: str, status: int, where: str | None
) -> None:
    lead_id = (
        new_id("never-scored")
        if status == 404
        else score(client, {"lead_id": new_id()})["scores"][0]["lead_id"]
    )
    response = client.get(f"/v1/leads/{lead_id}/history{query}")
    assert response.status_code == status, response.text
    if where:
        assert response.json()["detail"][0]["loc"] == ["query", where]
