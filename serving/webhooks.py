"""Webhooks out to the CRM: the dispatcher that sends what the outbox owes, signed, retried
with backoff until delivered or given up, and the list of deliveries the API shows.

The outbox rows are written with the scores that fire them (`store.webhook_outbox`); here a
background task of the service takes the due ones, posts each, and records the attempt. Nothing
of it runs on the scoring path: a receiver that is down or slow delays its own deliveries only.

Delivery is at least once: a dispatcher that dies between the post and its record leaves the
delivery to be taken again once its claim expires, and the receiver may get it twice (the
body's `id` is the same on every attempt: receivers drop the ones they have seen).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as package_version
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from features.validation import has_control_characters
from serving.card_links import CardLink, CardLinks
from serving.settings import Settings
from store import webhook_outbox
from store.webhook_outbox import ClaimedDelivery, DeliveryStatus

log = logging.getLogger("leadloop.webhooks")

#: The headers a receiver checks: the time of sending (Unix seconds) and the signature,
#: `v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`.
TIMESTAMP_HEADER = "X-Leadloop-Timestamp"
SIGNATURE_HEADER = "X-Leadloop-Signature"
#: Deliveries one dispatcher takes at a time, and posts at once.
CLAIM_BATCH = 20
#: Seconds a claim outlives the receiver's timeout: the time to record the attempts.
CLAIM_MARGIN_SECONDS = 60.0
#: How far each wait between attempts is stretched or shrunk at random.
JITTER = 0.2
#: The longest `Retry-After` honoured (seconds): a receiver cannot park a delivery for days.
MAX_RETRY_AFTER = 3600.0
#: The longest a receiver's `Retry-After` stops a dispatcher from claiming (seconds): the
#: delivery that got it may wait longer (`MAX_RETRY_AFTER`), the others are not held by it.
MAX_PAUSE_SECONDS = 300.0
#: A receiver that says the endpoint is gone for good is not asked again.
GONE = 410
#: The answers of a receiver that asks to be left alone for a while.
SLOW_DOWN = frozenset({429, 503})


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how webhooks are sent: the settings, read once at the edge."""

    url: str
    secret: bytes
    card_links: CardLinks
    #: The service's address as the CRM reaches it ("": card links stay relative paths).
    public_url: str
    timeout_seconds: float
    max_attempts: int
    backoff_seconds: tuple[float, ...]


def webhook_target(settings: Settings) -> WebhookTarget | None:
    """The webhook settings; None when no webhook URL is configured."""
    if settings.webhook_url is None or settings.webhook_secret is None:
        return None
    return WebhookTarget(
        url=str(settings.webhook_url),
        secret=settings.webhook_secret.get_secret_value().encode("utf-8"),
        card_links=CardLinks(settings.card_key_bytes, settings.card_link_seconds),
        public_url=str(settings.public_url or ""),
        timeout_seconds=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        backoff_seconds=tuple(settings.webhook_backoff_seconds),
    )


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The `X-Leadloop-Signature` of `body` sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def delivery_body(claimed: ClaimedDelivery, card: CardLink) -> bytes:
    """The JSON posted: the delivery's id, the stored payload and a card link made now (a
    delivery retried an hour later gets a link valid from then). The bytes the signature covers
    are these, exactly."""
    document = {
        "id": claimed.id,
        **claimed.payload,
        "card": {"url": card.url, "expires_at": card.expires_at.isoformat()},
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class AttemptResult:
    """What one post got: the receiver's status (None: no answer) or why it failed."""

    at: datetime
    status_code: int | None
    error: str | None = None
    #: The receiver's `Retry-After` in seconds, if it sent one.
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def after_attempt(
    attempts: int, result: AttemptResult, target: WebhookTarget, jitter: float
) -> dict[str, Any]:
    """The delivery's columns after its `attempts`-th attempt got `result`: delivered on a 2xx;
    given up (`failed`) on 410 Gone or the last attempt allowed; otherwise due again after the
    backoff's wait for that attempt (the last one repeated), stretched by `jitter` (0 to 1, at
    random) and at least the receiver's `Retry-After`."""
    changes: dict[str, Any] = {
        "last_attempt_at": result.at,
        "last_status_code": result.status_code,
        "last_error": result.error,
    }
    if result.delivered:
        status, next_at = DeliveryStatus.DELIVERED, None
        changes["delivered_at"] = result.at
    elif result.status_code == GONE or attempts >= target.max_attempts:
        status, next_at = DeliveryStatus.FAILED, None
    else:
        waits = target.backoff_seconds
        wait = waits[min(attempts, len(waits)) - 1] * (1 - JITTER + 2 * JITTER * jitter)
        if result.retry_after is not None:
            wait = max(wait, min(result.retry_after, MAX_RETRY_AFTER))
        status, next_at = DeliveryStatus.PENDING, result.at + timedelta(seconds=wait)
    return changes | {"status": status.value, "next_attempt_at": next_at}


def pause_after(results: Sequence[AttemptResult], target: WebhookTarget) -> float:
    """Seconds a dispatcher stops claiming after a round of posts got `results`: when none was
    delivered, the backoff's first wait; when a 429 or 503 came with a `Retry-After`, at least
    that (at most `MAX_PAUSE_SECONDS`); otherwise none. Each delivery still waits its own
    backoff: the pause spares a struggling receiver the rest of the backlog."""
    pause = 0.0
    if results and not any(result.delivered for result in results):
        pause = target.backoff_seconds[0]
    asked = [
        result.retry_after
        for result in results
        if result.status_code in SLOW_DOWN and result.retry_after is not None
    ]
    if asked:
        pause = max(pause, min(max(asked), MAX_PAUSE_SECONDS))
    return pause


@dataclass(frozen=True)
class DispatchRound:
    """What one look at the outbox did: deliveries taken, and the pause the answers asked for."""

    taken: int
    pause_seconds: float = 0.0


class WebhookDispatcher:
    """Sends the deliveries due, as a task of the service's event loop: the store is read and
    written in threads, the posts are made concurrently with httpx. Several dispatchers (the
    workers of `leadloop serve --workers`) share the outbox: each delivery is taken by one.
    A receiver that delivers nothing in a round, or asks for time, is left alone for a while
    (`pause_after`) by each dispatcher."""

    def __init__(
        self, sessions: sessionmaker[Session], target: WebhookTarget, poll_seconds: float
    ) -> None:
        self.sessions, self.target, self.poll_seconds = sessions, target, poll_seconds
        self._user_agent = f"leadloop/{package_version('leadloop')}"
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Send deliveries as they fall due, until `stop`."""
        self._task = asyncio.create_task(self._run(), name="webhook dispatcher")

    async def stop(self) -> None:
        """Let the posts in progress finish (within the receiver's timeout), then stop. A post
        cut short is sent again after its claim expires, by this service or another."""
        self._stopping.set()
        if self._task is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._task, self.target.timeout_seconds + 1)

    async def _run(self) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while not self._stopping.is_set():
                try:
                    done = await self.deliver_due(client)
                except Exception:  # the store out of reach, say: look again at the next poll
                    log.exception("sending webhooks failed; trying again")
                    done = DispatchRound(0)
                # A full batch: more may be due at once, unless the receiver asked for a pause.
                wait = 0.0 if done.taken >= CLAIM_BATCH else self.poll_seconds
                wait = max(wait, done.pause_seconds)
                if wait:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), wait)

    async def deliver_due(self, client: httpx.AsyncClient) -> DispatchRound:
        """Take the deliveries due now, post those still owed, record each attempt."""
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self.target.timeout_seconds + CLAIM_MARGIN_SECONDS)
        claimed = await asyncio.to_thread(self._claim, now, until)
        if not claimed:
            return DispatchRound(0)
        # Looked at again just before posting: a lead erased since the claim is not sent.
        held = await asyncio.to_thread(self._still_held, claimed)
        sending = [one for one in claimed if one.id in held]
        results = await asyncio.gather(*(self._post(client, one) for one in sending))
        if sending:
            await asyncio.to_thread(self._record, list(zip(sending, results, strict=True)))
        return DispatchRound(len(claimed), pause_after(results, self.target))

    def _claim(self, now: datetime, until: datetime) -> list[ClaimedDelivery]:
        with self.sessions.begin() as session:
            return webhook_outbox.claim_due(session, now, until, CLAIM_BATCH)

    def _still_held(self, claimed: Sequence[ClaimedDelivery]) -> set[int]:
        with self.sessions() as session:
            return webhook_outbox.still_held(session, claimed)

    async def _post(self, client: httpx.AsyncClient, claimed: ClaimedDelivery) -> AttemptResult:
        """One attempt; the receiver's body is never read."""
        target = self.target
        now = datetime.now(UTC)
        card = target.card_links.link(target.public_url, claimed.lead_id, now, None)
        body = delivery_body(claimed, card)
        timestamp = int(now.timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(target.secret, timestamp, body),
        }
        try:
            # The whole exchange within the timeout: a receiver dripping its headers byte by
            # byte does not hold the delivery past its claim.
            async with asyncio.timeout(target.timeout_seconds):
                request = client.stream("POST", target.url, content=body, headers=headers)
                async with request as response:
                    status = response.status_code
                    retry_after = _seconds(response.headers.get("Retry-After"))
        except (TimeoutError, httpx.TimeoutException):
            return self._failed(f"no answer within {target.timeout_seconds:g} s")
        except httpx.ConnectError:
            return self._failed("could not connect")
        except Exception as exc:  # named only: an exception's text may hold the URL's secrets
            return self._failed(f"{type(exc).__name__}")
        at = datetime.now(UTC)
        if 200 <= status < 300:
            return AttemptResult(at, status)
        redirect = " (redirects are not followed)" if 300 <= status < 400 else ""
        return AttemptResult(at, status, f"HTTP {status}{redirect}", retry_after)

    @staticmethod
    def _failed(error: str) -> AttemptResult:
        return AttemptResult(datetime.now(UTC), None, error)

    def _record(self, attempts: Sequence[tuple[ClaimedDelivery, AttemptResult]]) -> None:
        with self.sessions.begin() as session:
            for claimed, result in attempts:
                changes = after_attempt(claimed.attempts + 1, result, self.target, random.random())
                if webhook_outbox.record_attempt(session, claimed, changes):
                    if changes["status"] == DeliveryStatus.FAILED:
                        log.warning(
                            "webhook %d (%s of lead %r) given up after %d attempts: %s",
                            claimed.id,
                            claimed.event,
                            claimed.lead_id,
                            claimed.attempts + 1,
                            result.error,
                        )
                elif not webhook_outbox.delivery_exists(session, claimed.id):
                    # No lead id in the log: the lead was erased.
                    log.info("webhook %d: erased with its lead while it was being sent", claimed.id)
                else:
                    log.warning(
                        "webhook %d: its claim expired before the attempt was recorded; "
                        "another dispatcher may send it again",
                        claimed.id,
                    )


def _seconds(retry_after: str | None) -> float | None:
    """A `Retry-After` given in seconds (its HTTP-date form is ignored)."""
    if retry_after is None:
        return None
    seconds = retry_after.strip()
    # ASCII digits only: `isdigit` alone takes "²", which `float` refuses.
    if not (seconds.isascii() and seconds.isdigit()):
        return None
    return float(seconds)


def deliveries_page(
    sessions: sessionmaker[Session],
    status: DeliveryStatus | None,
    lead_id: str | None,
    before_id: int | None,
    limit: int,
) -> dict[str, Any]:
    """One page of webhook deliveries, newest first, and the id the next page starts before
    (None at the oldest)."""
    if lead_id is not None and has_control_characters(lead_id):
        # Never stored, and PostgreSQL refuses to compare a NUL.
        return {"deliveries": [], "next_before_id": None}
    with sessions() as session:
        page = webhook_outbox.deliveries_page(session, status, lead_id, before_id, limit + 1)
    last = page[limit - 1] if len(page) > limit else None
    return {"deliveries": page[:limit], "next_before_id": last.id if last else None}
