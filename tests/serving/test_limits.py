"""Limits: a body too large (413) or too slow (408), a key over its rate (429 with Retry-After),
headers too slow or too large, idle connections: on the real app, through TestClient and through
a real uvicorn server on a loopback port."""

from __future__ import annotations

import json
import pickle
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from uvicorn.importer import import_from_string

from serving.app import create_app
from serving.limits import TokenBuckets
from serving.server import GuardedHttpTools, WorkerHttpTools, uvicorn_config, worker_app
from serving.settings import Settings
from tests.support import NOW, api_key, bearer, make_settings, running_server

MAX_BODY = 4096
#: Short, so that the tests of slow clients wait little; they assert what happens, not when.
SLOW = 0.3


def limited_settings(directory: Path) -> Settings:
    return make_settings(directory).model_copy(
        update={
            "max_body_bytes": MAX_BODY,
            "body_timeout_seconds": SLOW,
            "header_timeout_seconds": SLOW,
            "max_header_bytes": 2048,
            "rate_limit_per_minute": 60,
            "rate_limit_burst": 3,
        }
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return limited_settings(tmp_path_factory.mktemp("limits"))


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """The app, with no key of its own: each test sends the keys it means to."""
    with TestClient(create_app(settings)) as running:
        yield running


def outcomes_body(size: int) -> bytes:
    """A well-formed outcomes request of `size` bytes (a long reason pads it)."""
    event = {
        "event_id": "limit-event",
        "lead_id": "limit-lead",
        "outcome": "lost",
        "occurred_at": NOW.isoformat(),
        "reason": "",
    }
    body = json.dumps({"outcomes": [event]})
    return body.replace('"reason": ""', f'"reason": "{"x" * (size - len(body))}"').encode()


# --- body size --------------------------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_413_before_routing(
    client: TestClient, settings: Settings
) -> None:
    """200 MB announced: refused at once, for a caller without a key too (before the 401)."""
    for headers in ({}, bearer(api_key(settings, "ingest"))):
        response = client.post(
            "/v1/outcomes",
            content=b"{}",
            headers=headers | {"content-length": str(200_000_000)},
        )
        assert response.status_code == 413, response.text
        assert response.json() == {"detail": f"the request body exceeds {MAX_BODY:,} bytes"}
        assert response.headers["connection"] == "close"


def test_a_chunked_body_over_the_limit_is_413(client: TestClient, settings: Settings) -> None:
    """No Content-Length: the bytes are counted as they are read."""
    body = outcomes_body(MAX_BODY + 1)
    response = client.post(
        "/v1/outcomes",
        content=iter([body[:1000], body[1000:]]),  # a generator: sent chunked
        headers=bearer(api_key(settings, "ingest")) | {"content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert response.headers["connection"] == "close"


def test_a_body_at_the_limit_is_read(client: TestClient, settings: Settings) -> None:
    body = outcomes_body(MAX_BODY)
    assert len(body) == MAX_BODY
    response = client.post(
        "/v1/outcomes",
        content=body,
        headers=bearer(api_key(settings, "ingest")) | {"content-type": "application/json"},
    )
    # Read and validated: the reason is too long, and the lead unknown.
    assert response.status_code == 422, response.text


# --- rate -------------------------------------------------------------------------------------


def test_a_key_over_its_rate_gets_429_with_retry_after(
    client: TestClient, settings: Settings
) -> None:
    key = api_key(settings, "read")
    answers = [client.get("/v1/leads/nobody", headers=bearer(key)) for _ in range(5)]
    assert [answer.status_code for answer in answers] == [404, 404, 404, 429, 429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert "rate limit" in refused.json()["detail"]
    assert key not in refused.text


def test_another_key_is_not_affected(client: TestClient, settings: Settings) -> None:
    throttled, other = api_key(settings, "read"), api_key(settings, "read")
    while client.get("/v1/leads/nobody", headers=bearer(throttled)).status_code != 429:
        pass
    assert client.get("/v1/leads/nobody", headers=bearer(other)).status_code == 404
    assert client.get("/v1/leads/nobody", headers=bearer(throttled)).status_code == 429


def test_requests_without_a_key_are_not_counted(client: TestClient) -> None:
    """Only open routes (no data) or an immediate 401 (no store query) answer them."""
    assert {client.get("/healthz").status_code for _ in range(10)} == {200}
    assert {client.get("/v1/model").status_code for _ in range(10)} == {401}


def test_rate_limit_off_when_zero(tmp_path: Path) -> None:
    settings = limited_settings(tmp_path).model_copy(update={"rate_limit_per_minute": 0})
    key = api_key(settings, "read")
    with TestClient(create_app(settings)) as client:
        answers = {client.get("/v1/leads/x", headers=bearer(key)).status_code for _ in range(10)}
    assert answers == {404}


def test_token_buckets_allow_the_burst_then_the_rate() -> None:
    buckets = TokenBuckets(per_minute=60, burst=3)
    assert [buckets.take("a", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=100.0) == pytest.approx(1.0)  # one token a second
    assert buckets.take("a", now=100.25) == pytest.approx(0.75)  # a refusal takes nothing
    assert buckets.take("b", now=100.25) == 0.0  # keys are independent
    assert buckets.take("a", now=101.0) == 0.0
    assert buckets.take("a", now=101.0) > 0
    assert [buckets.take("a", now=200.0) for _ in range(4)][-1] > 0  # refilled to the burst only


def test_token_buckets_keep_at_most_max_keys() -> None:
    buckets = TokenBuckets(per_minute=60, burst=1, max_keys=2)
    buckets.take("a", now=0.0)
    buckets.take("b", now=0.0)
    assert buckets.take("a", now=0.0) > 0  # a is used again: b is now the oldest
    buckets.take("c", now=0.0)
    assert buckets.take("a", now=0.0) > 0  # still known
    assert buckets.take("b", now=0.0) == 0.0  # dropped, so full again
    assert len(buckets._buckets) == 2


# --- the server: `leadloop serve`'s uvicorn ---------------------------------------------------


def test_serve_passes_the_connection_limits_to_uvicorn(settings: Settings) -> None:
    config = uvicorn_config(object(), settings, "127.0.0.1", 8000)
    assert config.timeout_keep_alive == settings.keep_alive_seconds
    assert config.limit_concurrency == settings.max_connections
    assert isinstance(config.http, type) and issubclass(config.http, GuardedHttpTools)
    assert config.http.header_timeout == settings.header_timeout_seconds
    assert config.http.max_header_bytes == settings.max_header_bytes


def test_serve_with_workers_names_what_each_worker_imports(settings: Settings) -> None:
    """uvicorn pickles the configuration into each worker: the app factory and the protocol go
    by import path (a worker's settings and limits are its own: tests/serving/
    test_snapshot_durability.py runs real workers)."""
    config = uvicorn_config(object(), settings, "127.0.0.1", 8000, workers=2)
    assert config.workers == 2 and config.factory
    copy = pickle.loads(pickle.dumps(config))
    assert import_from_string(copy.app) is worker_app
    assert import_from_string(copy.http) is WorkerHttpTools
    assert config.limit_concurrency == settings.max_connections


@dataclass(frozen=True)
class Server:
    port: int
    key: str

    def exchange(self, *parts: bytes) -> bytes:
        """Send `parts`, then read until the server closes the connection (at most 10 s)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as connection:
            for part in parts:
                connection.sendall(part)
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app under `leadloop serve`'s uvicorn configuration, on a free loopback port."""
    settings = limited_settings(tmp_path_factory.mktemp("server"))
    with running_server(settings) as address:
        yield Server(int(address.rsplit(":", 1)[1]), api_key(settings, "admin"))


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_request_answers_through_the_server(server: Server) -> None:
    answer = server.exchange(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200 and answer.endswith(b'{"status":"ok"}')


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    assert status_of(server.exchange()) == 408


def test_dripped_headers_are_cut(server: Server) -> None:
    answer = server.exchange(b"GET /healthz HTTP/1.1\r\n", b"Host: t\r\n")
    assert status_of(answer) == 408


def test_headers_over_the_limit_are_431(server: Server) -> None:
    answer = server.exchange(b"GET /healthz HTTP/1.1\r\nX-Padding: " + b"x" * 4096)
    assert status_of(answer) == 431


def test_a_dripped_body_is_cut_with_408(server: Server) -> None:
    head = (
        b"POST /v1/outcomes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + server.key.encode() + b"\r\nContent-Length: 100\r\n\r\n"
    )
    answer = server.exchange(head, b'{"outcomes": [')
    assert status_of(answer) == 408
    assert b"connection: close" in answer.lower()


def test_a_streamed_body_is_refused_at_the_limit_not_buffered(server: Server) -> None:
    """Chunked: the 413 comes once the limit is passed, while the body is still coming."""
    head = (
        b"POST /v1/outcomes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    kilobyte = b"400\r\n" + b"x" * 1024 + b"\r\n"
    answer = server.exchange(head, *[kilobyte] * (MAX_BODY // 1024 + 1))  # no last chunk
    assert status_of(answer) == 413


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(server: Server) -> None:
    head = b"POST /v1/scores HTTP/1.1\r\nHost: t\r\nContent-Length: 200000000\r\n\r\n"
    answer = server.exchange(head)
    assert status_of(answer) == 413
