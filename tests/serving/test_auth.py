"""API keys: every protected route refuses a request without a valid key of its scope, and the
`leadloop keys` commands that make, list and revoke them."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select
from starlette.routing import Mount
from starlette.testclient import TestClient
from typer.testing import CliRunner, Result

from features.schema import LeadSchema
from serving.app import create_app
from serving.auth import KeyRequired
from serving.cli import app as cli
from serving.key_cache import KeyCache
from serving.settings import Settings
from store.api_keys import KeyHolder, Scope, hash_key, revoke_key
from store.demo_funnel import generate_demo_funnel
from store.tables import ApiKey, Lead, OutcomeEvent
from tests.support import NOW, api_key, bearer, make_settings, open_store, seed

#: Routes that hold no data, answered to anyone: liveness, readiness and the API's description.
OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
#: Routes opened by a signed link instead of a key (an API key alone does not open them).
SIGNED_PATHS = ("/v1/leads/{lead_id:path}/card",)
#: Mounted folders open to anyone: the scripts and styles of the API's description.
OPEN_MOUNTS = ("/docs/assets",)
KNOWN_LEAD = "demo-000000"  # the first lead of the seeded funnel
CRM_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "crm"
#: What each CRM route is sent: its media type and the CRM's sample.
CRM_BODIES = {
    "/v1/crm/hubspot": ("application/json", CRM_EXAMPLES / "hubspot_deal_closedwon.json"),
    "/v1/crm/salesforce": ("text/xml", CRM_EXAMPLES / "salesforce_outbound_message.xml"),
}
KEY_PATTERN = re.compile(r"ll_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class Call:
    """One protected route, called the way a client with its scope would."""

    method: str
    path: str
    scope: Scope
    #: The route's path as the app declares it, and as the OpenAPI document lists it.
    route: str
    openapi: str | None = None
    accepted: int = 200
    #: The route also takes the key as `?key=` (a CRM that cannot send a header).
    query_key: bool = False

    def send(self, client: TestClient, headers: dict[str, str], tag: str = "auth") -> Any:
        """The request; a body's ids carry `tag`, so what a refused request stored would show."""
        body = None
        if self.path == "/v1/scores":
            body = {"leads": [{"lead_id": f"{tag}-lead", "source": "referral"}]}
        elif self.path == "/v1/outcomes":
            event = {
                "event_id": f"{tag}-event",
                "lead_id": KNOWN_LEAD,
                "outcome": "contacted",
                "occurred_at": NOW.isoformat(),
            }
            body = {"outcomes": [event]}
        elif self.path in CRM_BODIES:  # the samples' leads, renamed: unknown, skipped, 200
            media_type, sample = CRM_BODIES[self.path]
            content = sample.read_bytes().replace(b"crm-1000", f"{tag}-crm-".encode())
            headers = headers | {"content-type": media_type}
            return client.request(self.method, self.path, content=content, headers=headers)
        return client.request(
            self.method, self.path, json=body, headers=headers, follow_redirects=False
        )


CALLS = [
    Call("POST", "/v1/scores", Scope.SCORE, "/v1/scores", "/v1/scores"),
    Call("POST", "/v1/outcomes", Scope.INGEST, "/v1/outcomes", "/v1/outcomes"),
    Call(
        "GET",
        f"/v1/leads/{KNOWN_LEAD}",
        Scope.READ,
        "/v1/leads/{lead_id:path}",
        "/v1/leads/{lead_id}",
    ),
    Call(
        "GET",
        f"/v1/leads/{KNOWN_LEAD}/history",
        Scope.READ,
        "/v1/leads/{lead_id:path}/history",
        "/v1/leads/{lead_id}/history",
    ),
    Call(
        "GET",
        f"/v1/leads/{KNOWN_LEAD}/changes",
        Scope.READ,
        "/v1/leads/{lead_id:path}/changes",
        "/v1/leads/{lead_id}/changes",
        accepted=404,  # past the key check: a seeded lead has no score to compare
    ),
    Call(
        "POST",
        f"/v1/leads/{KNOWN_LEAD}/card-link",
        Scope.READ,
        "/v1/leads/{lead_id:path}/card-link",
        "/v1/leads/{lead_id}/card-link",
        accepted=404,  # past the key check: a seeded lead has no score to show
    ),
    Call(
        "DELETE",
        "/v1/leads/never-stored",
        Scope.ADMIN,
        "/v1/leads/{lead_id:path}",
        "/v1/leads/{lead_id}",
        accepted=404,  # past the key check: the erasure finds no such lead
    ),
    Call(
        "POST",
        "/v1/crm/hubspot",
        Scope.INGEST,
        "/v1/crm/hubspot",
        "/v1/crm/hubspot",
        query_key=True,
    ),
    Call(
        "POST",
        "/v1/crm/salesforce",
        Scope.INGEST,
        "/v1/crm/salesforce",
        "/v1/crm/salesforce",
        query_key=True,
    ),
    Call(
        "GET",
        "/v1/webhooks/deliveries",
        Scope.READ,
        "/v1/webhooks/deliveries",
        "/v1/webhooks/deliveries",
    ),
    Call("GET", "/v1/model", Scope.READ, "/v1/model", "/v1/model"),
    Call("GET", "/v1/alerts", Scope.READ, "/v1/alerts", "/v1/alerts"),
    Call("GET", "/metrics", Scope.READ, "/metrics", "/metrics"),
    Call("GET", "/reports", Scope.READ, "/reports", accepted=307),
    Call("GET", "/reports/", Scope.READ, "/reports"),
    Call("GET", "/reports/alerts.json", Scope.READ, "/reports"),
]
CALL_IDS = [f"{call.method} {call.path}" for call in CALLS]


@dataclass(frozen=True)
class Service:
    client: TestClient
    settings: Settings
    admin_key: str
    revoked_key: str
    #: A key holding exactly the scope, and one holding every other scope but admin.
    only: dict[Scope, str]
    all_but: dict[Scope, str]

    def nothing_stored_by_refused_requests(self) -> bool:
        sessions = open_store(self.settings.database_url)
        try:
            with sessions() as session:
                leads = select(func.count()).where(Lead.lead_id == "refused-lead")
                events = select(func.count()).where(OutcomeEvent.event_id == "refused-event")
                return session.scalar(leads) == 0 and session.scalar(events) == 0
        finally:
            sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, demo_schema: LeadSchema) -> Iterator[Service]:
    """A service over a small store (served by the rules score: no model to train), with reports
    written, so that every route a key may call answers 200."""
    settings = make_settings(tmp_path_factory.mktemp("auth"))
    settings = settings.model_copy(update={"crm_mapping": CRM_EXAMPLES / "stages.yaml"})
    sessions = open_store(settings.database_url)
    seed(sessions, generate_demo_funnel(400, seed=9), demo_schema)
    sessions.kw["bind"].dispose()
    settings.reports_dir.mkdir(parents=True)
    (settings.reports_dir / "index.html").write_text("<html><body>dashboard</body></html>")
    (settings.reports_dir / "alerts.json").write_text("[]")
    (settings.reports_dir / "kpis.json").write_text(json.dumps({"as_of": "2026-11-02"}))

    roles = [scope for scope in Scope if scope is not Scope.ADMIN]
    revoked = api_key(settings)
    sessions = open_store(settings.database_url)
    with sessions.begin() as session:
        name = session.scalar(select(ApiKey.name).where(ApiKey.key_hash == hash_key(revoked)))
        revoke_key(session, name, NOW)
    sessions.kw["bind"].dispose()
    with TestClient(create_app(settings)) as client:
        yield Service(
            client=client,
            settings=settings,
            admin_key=api_key(settings, Scope.ADMIN),
            revoked_key=revoked,
            only={scope: api_key(settings, scope) for scope in Scope},
            all_but={scope: api_key(settings, *(set(roles) - {scope})) for scope in Scope},
        )


def without_a_valid_key(service: Service) -> dict[str, dict[str, str]]:
    """Every way of not presenting a valid key."""
    admin = service.admin_key
    return {
        "no header": {},
        "another scheme": {"Authorization": f"Basic {admin}"},
        "no scheme": {"Authorization": admin},
        "empty bearer": {"Authorization": "Bearer "},
        "unknown key": bearer("ll_" + "A" * 43),
        "the key's hash": bearer(hash_key(admin)),
        "revoked key": bearer(service.revoked_key),
    }


def says_nothing_of(service: Service, response: Any) -> None:
    """An error body names neither a key nor a hash of one."""
    text = response.text
    assert not KEY_PATTERN.search(text) and not re.search(r"[0-9a-f]{64}", text), text
    assert service.admin_key not in text and service.revoked_key not in text


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_without_a_valid_key_every_route_answers_401(service: Service, call: Call) -> None:
    for case, headers in without_a_valid_key(service).items():
        response = call.send(service.client, headers, tag="refused")
        assert response.status_code == 401, (case, response.text)
        assert response.headers["www-authenticate"] == "Bearer", case
        assert "Authorization: Bearer" in response.json()["detail"]
        says_nothing_of(service, response)
    assert service.nothing_stored_by_refused_requests()


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_a_key_without_the_route_s_scope_gets_403(service: Service, call: Call) -> None:
    response = call.send(service.client, bearer(service.all_but[call.scope]), tag="refused")
    assert response.status_code == 403, response.text
    assert response.json() == {"detail": f"this API key lacks the {str(call.scope)!r} scope"}
    says_nothing_of(service, response)
    assert service.nothing_stored_by_refused_requests()


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_a_key_with_the_route_s_scope_is_served(service: Service, call: Call) -> None:
    response = call.send(service.client, bearer(service.only[call.scope]))
    assert response.status_code == call.accepted, response.text


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_an_admin_key_is_served_everywhere(service: Service, call: Call) -> None:
    response = call.send(service.client, bearer(service.admin_key))
    assert response.status_code == call.accepted, response.text


def test_served_requests_are_the_real_thing(service: Service) -> None:
    """What the keyed calls above answer is data, not an empty shell."""
    headers = bearer(service.admin_key)
    scored = Call("POST", "/v1/scores", Scope.SCORE, "/v1/scores").send(service.client, headers)
    assert scored.json()["scores"][0]["lead_id"] == "auth-lead"
    lead = service.client.get(f"/v1/leads/{KNOWN_LEAD}", headers=headers).json()
    assert lead["lead_id"] == KNOWN_LEAD
    assert service.client.get("/reports/", headers=headers).text.endswith("dashboard</body></html>")
    redirect = service.client.get("/reports", headers=headers, follow_redirects=False)
    assert redirect.headers["location"] == "/reports/"


@pytest.mark.parametrize("path", OPEN_PATHS)
def test_routes_without_data_are_open(service: Service, path: str) -> None:
    assert service.client.get(path).status_code == 200


def test_every_route_is_open_or_in_the_matrix(service: Service) -> None:
    """A route added later, in neither list, fails here: the matrix would not cover it."""
    paths = set()
    for context in iter_route_contexts(service.client.app.routes):  # type: ignore[attr-defined]
        paths.add(context.path)
        if isinstance(context.original_route, Mount) and context.path not in OPEN_MOUNTS:
            assert isinstance(context.original_route.app, KeyRequired), context.path
    listed = {call.route for call in CALLS} | set(OPEN_PATHS) | set(OPEN_MOUNTS)
    assert paths == listed | set(SIGNED_PATHS)


def test_a_key_does_not_open_a_card_without_its_signed_link(service: Service) -> None:
    answer = service.client.get(f"/v1/leads/{KNOWN_LEAD}/card", headers=bearer(service.admin_key))
    assert answer.status_code == 403 and "signed link" in answer.text


def test_openapi_shows_the_key_scheme_and_each_route_s_scope(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["APIKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for call in CALLS:
        if call.openapi is None:
            continue
        operation = document["paths"][call.openapi][call.method.lower()]
        in_query = [{"APIKeyInQuery": [call.scope]}] if call.query_key else []
        assert operation["security"] == [{"APIKey": [call.scope]}, *in_query], call.path
        assert {"401", "403"} <= set(operation["responses"]), call.path
    for path in ("/healthz", "/readyz"):
        operation = document["paths"][path]["get"]
        assert "security" not in operation and "401" not in operation["responses"]


def test_keys_never_reach_the_logs(service: Service, caplog: pytest.LogCaptureFixture) -> None:
    # SQLAlchemy's statement echo, off unless asked for, would log every bound parameter.
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="sqlalchemy")
    for call in CALLS:
        call.send(service.client, bearer(service.admin_key))
        call.send(service.client, bearer(service.revoked_key))
        call.send(service.client, bearer(service.all_but[call.scope]))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for key in (service.admin_key, service.revoked_key, *service.all_but.values()):
        assert key not in logged and hash_key(key) not in logged


# --- leadloop keys ----------------------------------------------------------------------------


def keys(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["keys", *args], env={"LEADLOOP_DATABASE_URL": settings.database_url}
    )


def test_create_prints_the_key_alone_on_the_last_line_and_it_works(tmp_path: Path) -> None:
    """With the key cache off, a revoked key is refused at its next request."""
    settings = make_settings(tmp_path).model_copy(update={"key_cache_seconds": 0})
    created = keys(settings, "create", "--name", "crm", "--scope", "ingest", "--scope", "read")
    assert created.exit_code == 0, created.output
    key = created.stdout.splitlines()[-1]
    assert KEY_PATTERN.fullmatch(key), created.stdout
    assert key not in created.stderr
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/alerts", headers=bearer(key)).status_code == 404  # no report yet
        refused = client.post("/v1/scores", json={"leads": [{"lead_id": "x"}]}, headers=bearer(key))
        assert refused.status_code == 403

        revoked = keys(settings, "revoke", "crm")
        assert revoked.exit_code == 0, revoked.output
        assert "crm" in revoked.stdout and key not in revoked.output
        assert client.get("/v1/alerts", headers=bearer(key)).status_code == 401


def test_list_shows_names_scopes_and_times_never_keys(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    empty = keys(settings, "list")
    assert empty.exit_code == 0 and "No API keys yet" in empty.stderr and empty.stdout == ""
    made = [
        keys(settings, "create", "--name", name, "--scope", scope)
        for name, scope in [("hubspot", "score"), ("ops", "admin")]
    ]
    assert keys(settings, "revoke", "hubspot").exit_code == 0
    listed = keys(settings, "list")
    assert listed.exit_code == 0, listed.output
    lines = map(str.split, listed.stdout.splitlines())
    rows = {words[0]: words[1:] for words in lines if words and words[0] in ("hubspot", "ops")}
    assert rows["hubspot"][0] == "score" and len(rows["hubspot"]) == 5  # created and revoked
    assert rows["ops"][0] == "admin" and len(rows["ops"]) == 3  # created, not revoked
    for result in made:
        key = result.stdout.splitlines()[-1]
        assert key not in listed.output and hash_key(key) not in listed.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["create", "--name", "a", "--scope", "write"], "unknown scope 'write'"),
        (["create", "--name", "taken", "--scope", "read"], "a key named 'taken' exists already"),
        (["create", "--name", " padded", "--scope", "read"], "printable characters"),
        (["revoke", "nobody"], "no key named 'nobody'"),
    ],
    ids=["unknown-scope", "duplicate-name", "bad-name", "unknown-name"],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, args: list[str], says: str) -> None:
    settings = make_settings(tmp_path)
    assert keys(settings, "create", "--name", "taken", "--scope", "admin").exit_code == 0
    result = keys(settings, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and says in result.stderr
    assert "Traceback" not in result.output


def test_a_revoked_key_is_refused_within_the_cache_time(tmp_path: Path) -> None:
    """A running service remembers a valid key for `key_cache_seconds`, then asks again."""
    settings = make_settings(tmp_path).model_copy(update={"key_cache_seconds": 0.5})
    key = keys(settings, "create", "--name", "crm", "--scope", "read").stdout.splitlines()[-1]
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/alerts", headers=bearer(key)).status_code == 404
        assert keys(settings, "revoke", "crm").exit_code == 0
        revoked_at = time.monotonic()
        while client.get("/v1/alerts", headers=bearer(key)).status_code != 401:
            assert time.monotonic() - revoked_at < 0.5 + 2.0, "revoked key still accepted"
            time.sleep(0.05)


def test_the_key_cache_forgets_a_key_after_its_time() -> None:
    holder = KeyHolder("crm", frozenset({Scope.READ}))
    cache = KeyCache(seconds=0.2)
    cache.put("hash", holder)
    assert cache.get("hash") == holder and cache.get("other") is None
    time.sleep(0.3)
    assert cache.get("hash") is None
    off = KeyCache(seconds=0)
    off.put("hash", holder)
    assert off.get("hash") is None
