"""Webhooks out to the CRM, end to end: a real service scores leads with the trained champion,
its dispatcher posts to a receiving HTTP server on loopback, and the receiver checks the
signature as the README tells a CRM to. Nothing is mocked: the store is SQLite (and
PostgreSQL for two dispatchers sharing one outbox)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from features.schema import LeadSchema
from serving.card_links import CardLinks, card_path
from serving.settings import Settings
from serving.webhooks import (
    CLAIM_BATCH,
    MAX_PAUSE_SECONDS,
    AttemptResult,
    WebhookDispatcher,
    WebhookTarget,
    after_attempt,
    pause_after,
    webhook_target,
)
from store import erasure
from store.snapshot_writer import ScoredBatch, ScoredLead, write_batches
from store.tables import WebhookDelivery
from store.webhook_outbox import WebhookEvent, WebhookRules
from tests.store.test_webhook_outbox import without_cascades
from tests.support import NOW, PII_KEY, TrainedSetup, api_client, make_settings, open_store

EXAMPLE_REQUEST = Path(__file__).resolve().parents[2] / "examples" / "score_request.json"
SECRET = "whsec-test-0123456789abcdef"
CARD_KEY = "card-key-of-the-webhook-tests-32-bytes-long"
PUBLIC_URL = "https://leadloop.example.com"
#: How long a test waits for what happens in the background (a guard, not a measure).
PATIENCE = 30.0
T = TypeVar("T")


# --- a CRM's receiving end --------------------------------------------------------------------


def verify(secret: bytes, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """The README's check, as a receiver runs it: the signature over the timestamp and the raw
    body, and a timestamp recent enough that an old post replayed is refused."""
    timestamp = headers["X-Leadloop-Timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"v1={expected}", headers["X-Leadloop-Signature"])


@dataclass(frozen=True)
class Post:
    headers: dict[str, str]
    body: bytes

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Answer:
    """What the receiver answers one post, once `release` is set (if given)."""

    status: int
    release: threading.Event | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    #: The dispatcher posts 20 at once: http.server's backlog of 5 would drop connections,
    #: which the client's kernel tries again a second later.
    request_queue_size = 64


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1: records every post and answers them with `answers` in
    turn, then `otherwise`."""

    answers: list[Answer] = field(default_factory=list)
    port: int = 0
    posts: list[Post] = field(default_factory=list)
    otherwise: int = 200

    def __post_init__(self) -> None:
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.posts.append(Post(dict(self.headers.items()), body))
                    answer = (
                        receiver.answers.pop(0) if receiver.answers else Answer(receiver.otherwise)
                    )
                    receiver.arrived.notify_all()
                if answer.release is not None:
                    answer.release.wait(PATIENCE)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/leadloop-hook"

    def wait_for(self, count: int) -> list[Post]:
        """The posts, once at least `count` have arrived."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.posts) >= count, PATIENCE), self.posts
            return list(self.posts)

    def close(self) -> None:
        for answer in self.answers:
            if answer.release is not None:
                answer.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


# --- the service ------------------------------------------------------------------------------


def webhook_settings(trained: TrainedSetup, directory: Path, url: str, **webhooks: Any) -> Settings:
    """A service with a store of its own (no test sees another's deliveries) that serves the
    trained champion and posts webhooks to `url`, retrying within a fraction of a second."""
    fields = make_settings(directory).model_dump() | {
        "mlflow_tracking_uri": trained.settings.mlflow_tracking_uri,
        "mlflow_artifact_root": trained.settings.mlflow_artifact_root,
        "card_key": CARD_KEY,
        "public_url": PUBLIC_URL,
        "webhook_url": url,
        "webhook_secret": SECRET,
        "webhook_poll_seconds": 0.02,
        "webhook_backoff_seconds": [0.05],
        "webhook_timeout_seconds": 5.0,
    }
    return Settings(**(fields | webhooks))


def example_leads() -> tuple[dict[str, Any], dict[str, Any]]:
    """The README's example leads: a director who asked for a demo, and a student."""
    hot, cold = json.loads(EXAMPLE_REQUEST.read_text(encoding="utf-8"))["leads"]
    return hot, cold


def scores_of(trained: TrainedSetup, *leads: dict[str, Any]) -> list[tuple[int, str]]:
    """What the champion scores `leads` (score, grade), before any service runs."""
    return [(one.score, one.grade) for one in trained.run.candidate.scorer.score(list(leads))]


def score(client: TestClient, lead: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/scores", json={"leads": [lead]})
    assert response.status_code == 200, response.text
    return response.json()["scores"][0]


def deliveries(client: TestClient, **query: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/webhooks/deliveries", params=query)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def eventually(check: Callable[[], T | None]) -> T:
    """`check()`'s first true answer, asked until PATIENCE has passed."""
    deadline = time.monotonic() + PATIENCE
    while not (found := check()):
        assert time.monotonic() < deadline, "not within the test's patience"
        time.sleep(0.02)
    return found


def new_lead(lead: dict[str, Any]) -> dict[str, Any]:
    return lead | {"lead_id": f"hook-{uuid.uuid4().hex[:10]}"}


# --- end to end -------------------------------------------------------------------------------


def test_a_grade_change_reaches_the_crm_signed_with_the_documented_payload(
    trained: TrainedSetup, tmp_path: Path, receiver: Receiver
) -> None:
    hot, cold = example_leads()
    assert scores_of(trained, hot)[0][1] != scores_of(trained, cold)[0][1], "no grade change"
    settings = webhook_settings(trained, tmp_path, receiver.url, webhook_events=["grade_changed"])
    lead_id = new_lead(hot)["lead_id"]
    with api_client(settings) as client:
        before = score(client, hot | {"lead_id": lead_id})
        after = score(client, cold | {"lead_id": lead_id})
        (post,) = receiver.wait_for(1)
        delivered = eventually(lambda: deliveries(client, status="delivered"))
    sent_at = int(post.headers["X-Leadloop-Timestamp"])
    assert verify(SECRET.encode(), post.headers, post.body)
    assert not verify(b"another secret of the right length", post.headers, post.body)
    assert not verify(SECRET.encode(), post.headers, post.body.replace(b'"D"', b'"A"'))
    assert post.headers["Content-Type"] == "application/json"

    body = post.document
    card = body.pop("card")
    model_version = trained.run.model_version
    assert body == {
        "id": delivered[0]["id"],
        "event": "grade_changed",
        "lead_id": lead_id,
        "old": {
            "score": before["score"],
            "grade": before["grade"],
            "scored_at": body["old"]["scored_at"],
            "model_version": model_version,
        },
        "new": {
            "score": after["score"],
            "grade": after["grade"],
            "scored_at": body["new"]["scored_at"],
            "model_version": model_version,
        },
        "direction": "down" if after["grade"] > before["grade"] else "up",
        "reasons": [{"text": r["text"], "points": r["impact"]} for r in after["reasons"]],
    }
    assert body["reasons"] and all(reason["text"] for reason in body["reasons"])
    assert datetime.fromisoformat(body["old"]["scored_at"]) <= datetime.fromisoformat(
        body["new"]["scored_at"]
    )
    # The card link: absolute, to the lead's card, signed for it and valid from the sending.
    link = urlsplit(card["url"])
    assert f"{link.scheme}://{link.netloc}" == PUBLIC_URL
    assert link.path == card_path(lead_id)
    query = parse_qs(link.query)
    expires = int(query["expires"][0])
    assert expires == sent_at + settings.card_link_seconds
    assert datetime.fromisoformat(card["expires_at"]).timestamp() == expires
    links = CardLinks(CARD_KEY.encode(), settings.card_link_seconds)
    links.check(lead_id, str(expires), query["signature"][0], datetime.now(UTC))

    (listed,) = delivered
    assert listed["lead_id"] == lead_id and listed["event"] == "grade_changed"
    assert (listed["attempts"], listed["last_status_code"], listed["last_error"]) == (1, 200, None)
    assert listed["delivered_at"] is not None and listed["next_attempt_at"] is None


def test_a_threshold_crossed_fires_score_crossed(
    trained: TrainedSetup, tmp_path: Path, receiver: Receiver
) -> None:
    hot, cold = example_leads()
    (high, _), (low, _) = scores_of(trained, hot, cold)
    threshold = (high + low) // 2 + 1
    assert low < threshold <= high
    settings = webhook_settings(
        trained,
        tmp_path,
        receiver.url,
        webhook_events=["score_crossed"],
        webhook_thresholds=[threshold, 100],
    )
    lead_id = new_lead(hot)["lead_id"]
    with api_client(settings) as client:
        score(client, cold | {"lead_id": lead_id})
        score(client, hot | {"lead_id": lead_id})
        (post,) = receiver.wait_for(1)
        eventually(lambda: deliveries(client, status="delivered"))
        assert len(deliveries(client)) == 1
    assert verify(SECRET.encode(), post.headers, post.body)
    body = post.document
    assert (body["event"], body["direction"], body["thresholds"]) == (
        "score_crossed",
        "up",
        [threshold],
    )
    assert (body["old"]["score"], body["new"]["score"]) == (low, high)


def test_a_first_score_or_an_unchanged_grade_sends_nothing(
    trained: TrainedSetup, tmp_path: Path, receiver: Receiver
) -> None:
    hot, cold = example_leads()
    settings = webhook_settings(trained, tmp_path, receiver.url, webhook_thresholds=[50])
    first, same, changed = new_lead(hot), new_lead(hot), new_lead(hot)
    with api_client(settings) as client:
        score(client, first)
        score(client, same)
        score(client, same)
        assert deliveries(client) == []  # the scores are stored before the list is read
        score(client, changed)
        score(client, cold | {"lead_id": changed["lead_id"]})
        owed = deliveries(client)
        assert {d["lead_id"] for d in owed} == {changed["lead_id"]}
        assert sorted(d["event"] for d in owed) == ["grade_changed", "score_crossed"]
        posts = receiver.wait_for(2)
        eventually(lambda: len(deliveries(client, status="delivered")) == 2)
    assert {post.document["lead_id"] for post in posts} == {changed["lead_id"]}
    assert len(receiver.posts) == 2


def test_a_failed_attempt_is_retried_and_every_attempt_shows(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    """500, then 200: the second attempt is held by the receiver until the list has shown the
    first one's answer."""
    second = threading.Event()
    receiver = Receiver([Answer(500), Answer(200, second)])
    hot, cold = example_leads()
    settings = webhook_settings(trained, tmp_path, receiver.url, webhook_events=["grade_changed"])
    lead = new_lead(hot)
    try:
        with api_client(settings) as client:
            score(client, lead)
            score(client, cold | {"lead_id": lead["lead_id"]})
            receiver.wait_for(2)  # the second attempt is in flight
            (retrying,) = deliveries(client, lead_id=lead["lead_id"])
            assert retrying["status"] == "pending"
            assert (retrying["attempts"], retrying["last_status_code"]) == (1, 500)
            assert retrying["last_error"] == "HTTP 500"
            assert retrying["last_attempt_at"] is not None and retrying["delivered_at"] is None
            second.set()
            (done,) = eventually(lambda: deliveries(client, status="delivered"))
    finally:
        receiver.close()
    assert (done["attempts"], done["last_status_code"], done["last_error"]) == (2, 200, None)
    first_post, second_post = receiver.posts
    assert first_post.document["id"] == second_post.document["id"] == done["id"]
    assert all(verify(SECRET.encode(), p.headers, p.body) for p in receiver.posts)


def test_a_receiver_that_is_down_does_not_hold_up_scoring(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    """Scores are answered while the receiver is down and the delivery waits; once it is up,
    the delivery arrives."""
    reserved = socket.socket()  # bound, not listening: connections are refused
    reserved.bind(("127.0.0.1", 0))
    port = reserved.getsockname()[1]
    hot, cold = example_leads()
    settings = webhook_settings(
        trained,
        tmp_path,
        f"http://127.0.0.1:{port}/leadloop-hook",
        webhook_events=["grade_changed"],
        webhook_max_attempts=1000,
    )
    lead = new_lead(hot)
    receiver = None
    try:
        with api_client(settings) as client:
            score(client, lead)
            answered = score(client, cold | {"lead_id": lead["lead_id"]})
            assert answered["grade"] != "A"  # the answer came, with the receiver not up
            pending = eventually(
                lambda: [d for d in deliveries(client, status="pending") if d["attempts"] >= 2]
            )
            assert pending[0]["last_error"] == "could not connect"
            assert pending[0]["last_status_code"] is None
            reserved.close()
            receiver = Receiver(port=port)
            (post,) = receiver.wait_for(1)
            (done,) = eventually(lambda: deliveries(client, status="delivered"))
    finally:
        reserved.close()
        if receiver is not None:
            receiver.close()
    assert post.document["lead_id"] == lead["lead_id"]
    assert done["attempts"] >= 3 and done["last_status_code"] == 200


def test_a_slow_receiver_holds_up_its_delivery_only(trained: TrainedSetup, tmp_path: Path) -> None:
    """While the receiver keeps a delivery waiting for its answer, leads are scored and
    answered; the delivery completes when the receiver answers."""
    answer = threading.Event()
    receiver = Receiver([Answer(200, answer)])
    hot, cold = example_leads()
    settings = webhook_settings(trained, tmp_path, receiver.url, webhook_events=["grade_changed"])
    lead = new_lead(hot)
    try:
        with api_client(settings) as client:
            score(client, lead)
            score(client, cold | {"lead_id": lead["lead_id"]})
            receiver.wait_for(1)  # posted, and held unanswered
            scored_meanwhile = [score(client, new_lead(cold)) for _ in range(3)]
            assert not answer.is_set()
            (in_flight,) = deliveries(client)
            assert (in_flight["status"], in_flight["attempts"]) == ("pending", 0)
            answer.set()
            eventually(lambda: deliveries(client, status="delivered"))
    finally:
        receiver.close()
    assert len(scored_meanwhile) == 3 and len(receiver.posts) == 1


def test_after_the_last_attempt_a_delivery_is_given_up(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    receiver = Receiver([Answer(503) for _ in range(5)])
    hot, cold = example_leads()
    settings = webhook_settings(
        trained,
        tmp_path,
        receiver.url,
        webhook_events=["grade_changed"],
        webhook_max_attempts=3,
    )
    lead = new_lead(hot)
    try:
        with api_client(settings) as client:
            score(client, lead)
            score(client, cold | {"lead_id": lead["lead_id"]})
            (failed,) = eventually(lambda: deliveries(client, status="failed"))
            assert deliveries(client, status="pending") == []
    finally:
        receiver.close()
    assert (failed["attempts"], failed["last_status_code"]) == (3, 503)
    assert failed["last_error"] == "HTTP 503" and failed["next_attempt_at"] is None
    assert len(receiver.posts) == 3


# --- dispatchers sharing one outbox --------------------------------------------------------------


def owe(sessions: sessionmaker[Session], schema: LeadSchema, n: int) -> None:
    """`n` grade changes, due now."""
    rules = WebhookRules(frozenset({WebhookEvent.GRADE_CHANGED}))
    now = datetime.now(UTC)
    for grade, at in (("C", now - timedelta(minutes=1)), ("A", now)):
        leads = [
            ScoredLead({"lead_id": f"lead-{i:03d}", "created_at": NOW}, 0.5, 50, grade, None)
            for i in range(n)
        ]
        with sessions.begin() as session:
            write_batches(session, schema, PII_KEY, [ScoredBatch(leads, "7", at)], rules)


def target(url: str, tmp_path: Path, **changes: Any) -> WebhookTarget:
    settings = Settings(
        **make_settings(tmp_path).model_dump()
        | {"card_key": CARD_KEY, "webhook_url": url, "webhook_secret": SECRET}
        | changes
    )
    found = webhook_target(settings)
    assert found is not None
    return found


def stored_deliveries(sessions: sessionmaker[Session]) -> list[WebhookDelivery]:
    with sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


async def dispatch_until(dispatchers: list[WebhookDispatcher], done: Callable[[], bool]) -> None:
    for dispatcher in dispatchers:
        dispatcher.start()
    deadline = time.monotonic() + PATIENCE
    while not done():
        assert time.monotonic() < deadline, "not within the test's patience"
        await asyncio.sleep(0.02)
    await asyncio.gather(*(dispatcher.stop() for dispatcher in dispatchers))


def test_two_dispatchers_never_deliver_one_webhook_twice(
    sessions: sessionmaker[Session],
    database_url: str,
    demo_schema: LeadSchema,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """Two services' dispatchers (each its own connections) share one outbox of 60 deliveries:
    each is posted once."""
    owe(sessions, demo_schema, 60)
    stores = [open_store(database_url) for _ in range(2)]
    dispatchers = [WebhookDispatcher(s, target(receiver.url, tmp_path), 0.01) for s in stores]
    try:
        asyncio.run(dispatch_until(dispatchers, lambda: len(receiver.posts) >= 60))
    finally:
        for store in stores:
            store.kw["bind"].dispose()
    ids = Counter(post.document["id"] for post in receiver.posts)
    assert len(ids) == 60 and set(ids.values()) == {1}


def test_410_gone_gives_a_delivery_up_at_once(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, tmp_path: Path
) -> None:
    gone = Receiver([Answer(410)])
    owe(sessions, demo_schema, 1)
    dispatcher = WebhookDispatcher(sessions, target(gone.url, tmp_path), 0.01)
    try:
        asyncio.run(dispatch_until([dispatcher], lambda: len(gone.posts) >= 1))
    finally:
        gone.close()
    (delivery,) = stored_deliveries(sessions)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 1, 410)


def test_an_erased_lead_s_pending_delivery_is_gone_and_never_sent(
    sessions: sessionmaker[Session],
    database_url: str,
    demo_schema: LeadSchema,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """Erased where the foreign keys cascade nothing: the erasure removes the delivery itself."""
    owe(sessions, demo_schema, 2)
    with without_cascades(database_url) as session:
        erasure.erase_lead(session, "lead-000", PII_KEY, NOW)
    dispatcher = WebhookDispatcher(sessions, target(receiver.url, tmp_path), 0.01)
    asyncio.run(dispatch_until([dispatcher], lambda: len(receiver.posts) >= 1))
    assert [post.document["lead_id"] for post in receiver.posts] == ["lead-001"]
    assert [d.lead_id for d in stored_deliveries(sessions)] == ["lead-001"]


def test_a_delivery_erased_after_its_claim_is_not_sent(
    sessions: sessionmaker[Session],
    database_url: str,
    demo_schema: LeadSchema,
    receiver: Receiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The lead is erased as soon as the dispatcher's claim is committed, before the posts."""
    owe(sessions, demo_schema, 2)
    store = open_store(database_url)
    erased: list[str] = []

    def erase_once(_session: Session) -> None:
        if not erased:  # the dispatcher's first commit is its claim
            erased.append("lead-000")
            with sessions.begin() as session:
                erasure.erase_lead(session, "lead-000", PII_KEY, NOW)

    event.listen(store, "after_commit", erase_once)
    dispatcher = WebhookDispatcher(store, target(receiver.url, tmp_path), 0.01)
    try:
        asyncio.run(dispatch_until([dispatcher], lambda: len(receiver.posts) >= 1))
    finally:
        store.kw["bind"].dispose()
    assert erased and [post.document["lead_id"] for post in receiver.posts] == ["lead-001"]
    assert [(d.lead_id, d.status) for d in stored_deliveries(sessions)] == [
        ("lead-001", "delivered")
    ]
    assert "claim expired" not in caplog.text


def test_a_delivery_erased_while_it_is_posted_is_not_called_an_expired_claim(
    sessions: sessionmaker[Session],
    demo_schema: LeadSchema,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = threading.Event()
    holding = Receiver([Answer(200, answer)])
    owe(sessions, demo_schema, 1)
    dispatcher = WebhookDispatcher(sessions, target(holding.url, tmp_path), 0.01)

    async def erase_during_the_post() -> None:
        dispatcher.start()
        await asyncio.to_thread(holding.wait_for, 1)
        with sessions.begin() as session:
            erasure.erase_lead(session, "lead-000", PII_KEY, NOW)
        answer.set()
        await dispatcher.stop()

    caplog.set_level("INFO", logger="leadloop.webhooks")
    try:
        asyncio.run(erase_during_the_post())
    finally:
        holding.close()
    assert stored_deliveries(sessions) == []
    assert "erased with its lead while it was being sent" in caplog.text
    assert "claim expired" not in caplog.text


def test_a_receiver_answering_503_gets_one_batch_until_the_pause_is_over(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, tmp_path: Path
) -> None:
    """100 deliveries due, and a receiver that answers 503 at once: a round that delivered
    nothing stops the dispatcher claiming for the backoff's first wait (a minute here), so in
    the second watched the receiver gets one batch, not the whole backlog."""
    busy = Receiver(otherwise=503)
    owe(sessions, demo_schema, 100)
    plan = target(busy.url, tmp_path, webhook_backoff_seconds=[60], webhook_max_attempts=100)
    dispatcher = WebhookDispatcher(sessions, plan, 0.01)

    async def watch() -> None:
        dispatcher.start()
        await asyncio.to_thread(busy.wait_for, CLAIM_BATCH)
        await asyncio.sleep(1.0)
        await dispatcher.stop()

    try:
        asyncio.run(watch())
    finally:
        busy.close()
    assert len(busy.posts) == CLAIM_BATCH
    attempts = Counter(d.attempts for d in stored_deliveries(sessions))
    assert attempts == {1: CLAIM_BATCH, 0: 100 - CLAIM_BATCH}


def test_a_2xx_with_an_odd_retry_after_is_delivered_once(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, tmp_path: Path
) -> None:
    """ "²" passes `str.isdigit` but not `float`: the header is ignored, the answer kept."""
    odd = Receiver([Answer(200, headers={"Retry-After": "²"})])
    owe(sessions, demo_schema, 1)
    plan = target(odd.url, tmp_path, webhook_backoff_seconds=[0.05])  # a second post, soon
    dispatcher = WebhookDispatcher(sessions, plan, 0.01)
    try:
        asyncio.run(
            dispatch_until([dispatcher], lambda: stored_deliveries(sessions)[0].delivered_at)
        )
    finally:
        odd.close()
    (delivery,) = stored_deliveries(sessions)
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, None)
    assert len(odd.posts) == 1


# --- retries and settings (pure) ---------------------------------------------------------------


def test_a_round_that_delivered_nothing_or_was_asked_to_wait_pauses_the_claims(
    tmp_path: Path,
) -> None:
    plan = target("https://crm.example.com/hook", tmp_path, webhook_backoff_seconds=[10, 30])
    ok, failed = AttemptResult(NOW, 200), AttemptResult(NOW, 500, "HTTP 500")
    down = AttemptResult(NOW, None, "could not connect")

    def asked(status: int, seconds: float) -> AttemptResult:
        return AttemptResult(NOW, status, f"HTTP {status}", retry_after=seconds)

    assert pause_after([], plan) == 0
    assert pause_after([ok, failed], plan) == 0
    assert pause_after([failed, down], plan) == 10
    assert pause_after([ok, asked(429, 45)], plan) == 45
    assert pause_after([failed, asked(503, 2), asked(503, 5)], plan) == 10
    assert pause_after([asked(503, 10**6)], plan) == MAX_PAUSE_SECONDS
    assert pause_after([ok, asked(500, 45)], plan) == 0  # only 429 and 503 ask for time


def test_waits_grow_by_the_schedule_with_jitter_and_respect_retry_after(tmp_path: Path) -> None:
    plan = target(
        "https://crm.example.com/hook",
        tmp_path,
        webhook_backoff_seconds=[10, 30, 120],
        webhook_max_attempts=5,
    )
    failed = AttemptResult(NOW, 500, "HTTP 500")

    def wait(attempts: int, jitter: float, result: AttemptResult = failed) -> float:
        changes = after_attempt(attempts, result, plan, jitter)
        assert changes["status"] == "pending"
        return (changes["next_attempt_at"] - NOW).total_seconds()

    assert [wait(n, 0.5) for n in (1, 2, 3, 4)] == [10, 30, 120, 120]
    assert wait(1, 0.0) == pytest.approx(8) and wait(1, 1.0) == pytest.approx(12)
    assert wait(1, 0.5, AttemptResult(NOW, 429, "HTTP 429", retry_after=45)) == 45
    assert wait(1, 0.5, AttemptResult(NOW, None, "could not connect")) == 10
    assert after_attempt(5, failed, plan, 0.5)["status"] == "failed"
    assert after_attempt(1, AttemptResult(NOW, 410, "HTTP 410"), plan, 0.5)["status"] == "failed"
    delivered = after_attempt(5, AttemptResult(NOW, 204), plan, 0.5)
    assert (delivered["status"], delivered["delivered_at"]) == ("delivered", NOW)


@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        ({"webhook_url": "https://crm.example.com/hook"}, "webhook_secret"),
        (
            {"webhook_url": "https://crm.example.com/hook", "webhook_secret": "short"},
            "webhook_secret",
        ),
        (
            {
                "webhook_url": "http://crm.example.com/hook",
                "webhook_secret": SECRET,
                "env": "production",
            },
            "webhook_url",
        ),
        ({"webhook_thresholds": [0]}, "webhook_thresholds"),
        ({"webhook_events": ["lead_created"]}, "webhook_events"),
    ],
)
def test_insecure_or_meaningless_webhook_settings_are_refused(
    changes: dict[str, Any], refused: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**changes)
    assert {error["loc"][0] for error in caught.value.errors()} == {refused}


def test_plain_http_is_for_loopback_or_development() -> None:
    for url, env in [
        ("http://127.0.0.1:9000/hook", "production"),
        ("http://localhost/hook", "production"),
        ("http://[::1]/hook", "production"),
        ("http://crm.internal/hook", "development"),
    ]:
        Settings(webhook_url=url, webhook_secret=SECRET, env=env)


def test_without_a_url_nothing_is_owed_or_sent() -> None:
    settings = Settings()
    assert settings.webhook_rules() is None and webhook_target(settings) is None
    assert {e.value for e in WebhookEvent} == set(Settings.model_fields["webhook_events"].default)


def test_a_receiver_that_never_answers_costs_an_attempt_its_timeout(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, tmp_path: Path
) -> None:
    """It takes the connection (the kernel does) and says nothing."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    owe(sessions, demo_schema, 1)
    dispatcher = WebhookDispatcher(sessions, target(url, tmp_path, webhook_timeout_seconds=0.3), 1)
    try:
        asyncio.run(dispatch_until([dispatcher], lambda: stored_deliveries(sessions)[0].attempts))
    finally:
        silent.close()
    (delivery,) = stored_deliveries(sessions)
    assert (delivery.status, delivery.last_status_code) == ("pending", None)
    assert delivery.last_error == "no answer within 0.3 s"
