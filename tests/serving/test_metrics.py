"""`GET /metrics`: Prometheus text that moves with the requests served, labelled by route
template and never by a lead id, an email or a key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from features.schema import LeadSchema
from serving.app import create_app
from serving.settings import Settings
from store.api_keys import hash_key
from store.demo_funnel import generate_demo_funnel
from tests.support import NOW, api_key, bearer, make_settings, open_store, seed

KNOWN_LEAD = "demo-000000"  # the first lead of the seeded funnel
LEADS = "/v1/leads/{lead_id}"


@dataclass(frozen=True)
class Service:
    client: TestClient
    settings: Settings
    #: Holds every scope; over its rate after 20 requests in a row.
    key: str

    def scrape(self) -> str:
        """/metrics, read with a key of its own (the service's is spent by the tests)."""
        response = self.client.get("/metrics", headers=bearer(api_key(self.settings, "read")))
        assert response.status_code == 200, response.text
        return response.text

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers=bearer(self.key), **kwargs)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, demo_schema: LeadSchema) -> Iterator[Service]:
    """A service over a small seeded store, served by the rules score (no model to train)."""
    settings = make_settings(tmp_path_factory.mktemp("metrics")).model_copy(
        update={"rate_limit_per_minute": 60, "rate_limit_burst": 20, "max_body_bytes": 64_000}
    )
    sessions = open_store(settings.database_url)
    seed(sessions, generate_demo_funnel(400, seed=9), demo_schema)
    sessions.kw["bind"].dispose()
    with TestClient(create_app(settings)) as client:
        yield Service(client, settings, api_key(settings, "admin"))


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0.0 if none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def requests(text: str, route: str, status: int, method: str = "GET") -> float:
    return sample(
        text, "leadloop_http_requests_total", method=method, route=route, status=str(status)
    )


def outcome(event_id: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": event_id,
        "lead_id": KNOWN_LEAD,
        "outcome": "contacted",
        "occurred_at": NOW.isoformat(),
    }
    return event | overrides


def test_metrics_need_a_read_key(service: Service) -> None:
    assert service.client.get("/metrics").status_code == 401
    score_only = bearer(api_key(service.settings, "score"))
    assert service.client.get("/metrics", headers=score_only).status_code == 403
    response = service.client.get("/metrics", headers=bearer(api_key(service.settings, "read")))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")


def test_requests_are_counted_by_route_template_and_status(service: Service) -> None:
    before = service.scrape()
    assert service.call("GET", f"/v1/leads/{KNOWN_LEAD}").status_code == 200
    assert service.call("GET", "/v1/leads/no-such-lead").status_code == 404
    assert service.call("GET", "/v1/leads/no-such-lead").status_code == 404
    after = service.scrape()
    for status, more in ((200, 1), (404, 2)):
        assert requests(after, LEADS, status) - requests(before, LEADS, status) == more
    latency = "leadloop_http_request_duration_seconds_count"
    assert sample(after, latency, route=LEADS) - sample(before, latency, route=LEADS) == 3


def test_paths_no_route_matches_share_one_label(service: Service) -> None:
    before = service.scrape()
    for guess in ("/admin.php", "/v2/leads", "/wp-login"):
        service.call("GET", guess)
    after = service.scrape()
    assert requests(after, "unmatched", 404) - requests(before, "unmatched", 404) == 3
    assert "admin.php" not in after and "wp-login" not in after


def test_scores_are_counted_by_grade(service: Service) -> None:
    before = service.scrape()
    leads = [{"lead_id": f"metrics-{n}", "source": "referral", "page_views": n} for n in range(5)]
    response = service.call("POST", "/v1/scores", json={"leads": leads})
    assert response.status_code == 200, response.text
    grades = [score["grade"] for score in response.json()["scores"]]
    after = service.scrape()
    for grade in set(grades):
        counted = sample(after, "leadloop_scores_total", grade=grade)
        assert counted - sample(before, "leadloop_scores_total", grade=grade) == grades.count(grade)


def test_the_served_model_version_is_shown(service: Service) -> None:
    text = service.scrape()
    served = {"model_name": "lead-scoring", "version": "rules-fallback"}
    assert sample(text, "leadloop_model_info", **served) == 1


def test_no_model_served_shows_as_zero(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # an empty store: no champion, no rules score
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics", headers=bearer(api_key(settings, "read"))).text
    assert 'leadloop_model_info{model_name="lead-scoring",version="none"} 0.0' in text


def test_ingest_counts_accepted_and_duplicate_events(service: Service) -> None:
    before = service.scrape()
    batch = {"outcomes": [outcome("metrics-e1"), outcome("metrics-e1"), outcome("metrics-e2")]}
    answer = service.call("POST", "/v1/outcomes", json=batch)
    assert answer.json() == {"accepted": 2, "duplicates": 1}
    after = service.scrape()
    for result, more in (("accepted", 2), ("duplicate", 1)):
        name = "leadloop_outcome_events_total"
        assert sample(after, name, result=result) - sample(before, name, result=result) == more


def test_rejections_are_counted_by_reason(service: Service) -> None:
    client, before = service.client, service.scrape()
    client.get("/v1/model")  # 401
    client.get("/v1/model", headers=bearer(api_key(service.settings, "score")))  # 403
    service.call("POST", "/v1/outcomes", json={"outcomes": []})  # 422
    service.call("POST", "/v1/outcomes", json={"outcomes": [outcome("metrics-conflict")]})
    conflicting = outcome("metrics-conflict", outcome="handed_over")
    service.call("POST", "/v1/outcomes", json={"outcomes": [conflicting]})  # 409
    client.post("/v1/outcomes", content=b"{}", headers={"content-length": "200000000"})  # 413
    spent = bearer(api_key(service.settings, "read"))
    while client.get("/v1/model", headers=spent).status_code != 429:
        pass
    after = service.scrape()
    expected = {
        "401": "no_valid_key",
        "403": "scope_missing",
        "409": "event_conflict",
        "413": "body_too_large",
        "422": "invalid_input",
        "429": "rate_limited",
    }
    name = "leadloop_rejected_requests_total"
    for status, reason in expected.items():
        more = sample(after, name, status=status, reason=reason)
        assert more - sample(before, name, status=status, reason=reason) == 1, status
    # Refused before routing, and still counted against the route they asked for.
    assert requests(after, "/v1/model", 429) - requests(before, "/v1/model", 429) == 1
    assert requests(after, "/v1/outcomes", 413, "POST") == 1


def test_no_lead_id_email_or_key_in_the_metrics(service: Service) -> None:
    canary = "pii-canary-7f3a"
    email = f"{canary}@example.com"
    service.call("POST", "/v1/scores", json={"leads": [{"lead_id": canary, "email": email}]})
    service.call("GET", f"/v1/leads/{canary}")
    service.call("GET", f"/v1/leads/{canary}/with/slashes")
    service.call("POST", "/v1/outcomes", json={"outcomes": [outcome(canary, lead_id=canary)]})
    text = service.scrape()
    assert requests(text, LEADS, 200) >= 1
    for secret in (canary, KNOWN_LEAD, "example.com", service.key, hash_key(service.key)):
        assert secret not in text
