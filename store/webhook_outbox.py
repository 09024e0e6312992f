"""The outbox of webhooks owed to the CRM: which score changes fire one, and the deliveries'
rows, claimed by the service's dispatchers and marked with each attempt's result.

A delivery is written in the transaction that stores the score firing it (see
`store.snapshot_writer.write_batches`): a score stored is a webhook owed, and nothing of HTTP
happens on the scoring path. Functions that read or write take an open `Session`; the caller
owns the transaction. `fired_events` and `owed_deliveries` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from store.tables import Lead, ScoreSnapshot, WebhookDelivery

#: Lead ids per IN (...) query, well under SQLite's limit on bound parameters.
_IN_CHUNK = 500
_DELIVERIES = WebhookDelivery.__table__


class WebhookEvent(StrEnum):
    """What may fire a webhook: a lead's grade changed, or its score crossed a threshold."""

    GRADE_CHANGED = "grade_changed"
    SCORE_CROSSED = "score_crossed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: Given up: out of attempts, or the receiver answered 410 Gone.
    FAILED = "failed"


@dataclass(frozen=True)
class WebhookRules:
    """The events the CRM wants, as configured (plain values: they go to the writer process)."""

    events: frozenset[WebhookEvent]
    #: Scores whose crossing fires `score_crossed`: 70 fires on 69 -> 70 and on 70 -> 69.
    thresholds: tuple[int, ...] = ()


@dataclass(frozen=True)
class StoredScore:
    """A lead's score as a snapshot keeps it."""

    snapshot_id: int
    score: int
    grade: str
    scored_at: datetime
    model_version: str


@dataclass(frozen=True)
class FiredEvent:
    event: WebhookEvent
    #: What the body says of the change besides the scores: its direction, the thresholds.
    details: dict[str, Any] = field(default_factory=dict)


def fired_events(rules: WebhookRules, old: StoredScore, new: StoredScore) -> list[FiredEvent]:
    """The events `rules` fire when a lead's score goes from `old` to `new`."""
    fired = []
    if WebhookEvent.GRADE_CHANGED in rules.events and new.grade != old.grade:
        # Grades run from A (best) down to D: a letter earlier in the alphabet is a rise.
        direction = "up" if new.grade < old.grade else "down"
        fired.append(FiredEvent(WebhookEvent.GRADE_CHANGED, {"direction": direction}))
    if WebhookEvent.SCORE_CROSSED in rules.events:
        low, high = sorted((old.score, new.score))
        crossed = sorted(t for t in set(rules.thresholds) if low < t <= high)
        if crossed:
            direction = "up" if new.score > old.score else "down"
            details = {"direction": direction, "thresholds": crossed}
            fired.append(FiredEvent(WebhookEvent.SCORE_CROSSED, details))
    return fired


def owed_deliveries(
    rules: WebhookRules,
    previous: Mapping[str, StoredScore],
    snapshots: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The `webhook_deliveries` rows that `snapshots` (rows just stored, with their `id`, in the
    order written) fire, given each lead's newest score stored before them. A lead's first
    score changes nothing; a score older than the lead's newest (another process's, stored
    first) is not the lead's score now and fires nothing either."""
    latest = dict(previous)
    rows = []
    for snapshot in snapshots:
        lead_id = snapshot["lead_id"]
        new = StoredScore(
            snapshot["id"],
            snapshot["score"],
            snapshot["grade"],
            snapshot["scored_at"],
            snapshot["model_version"],
        )
        old = latest.get(lead_id)
        if old is not None and new.scored_at < old.scored_at:
            continue
        latest[lead_id] = new
        if old is None:
            continue
        for fired in fired_events(rules, old, new):
            rows.append(
                {
                    "event": fired.event.value,
                    "lead_id": lead_id,
                    "old_snapshot_id": old.snapshot_id,
                    "new_snapshot_id": new.snapshot_id,
                    "payload": _payload(fired, lead_id, old, new, snapshot["reasons"]),
                    "created_at": new.scored_at,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "next_attempt_at": new.scored_at,
                    "claimed_until": None,
                    "last_attempt_at": None,
                    "last_status_code": None,
                    "last_error": None,
                    "delivered_at": None,
                }
            )
    return rows


def _payload(
    fired: FiredEvent,
    lead_id: str,
    old: StoredScore,
    new: StoredScore,
    reasons: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """The body as stored: the dispatcher adds the delivery's id and a fresh card link."""
    return {
        "event": fired.event.value,
        "lead_id": lead_id,
        "old": _score_document(old),
        "new": _score_document(new),
        **fired.details,
        # The new score's reasons in a sales rep's words, raisers first; none when the lead was
        # scored without reasons.
        "reasons": [{"text": r.get("text"), "points": r["impact"]} for r in reasons or []],
    }


def _score_document(score: StoredScore) -> dict[str, Any]:
    return {
        "score": score.score,
        "grade": score.grade,
        "scored_at": score.scored_at.isoformat(),
        "model_version": score.model_version,
    }


def latest_scores(session: Session, lead_ids: Iterable[str]) -> dict[str, StoredScore]:
    """Each of the leads' newest stored score (among equal times the last written), in one
    query per 500 leads; leads never scored are absent."""
    wanted = sorted(set(lead_ids))
    found: dict[str, StoredScore] = {}
    # Each lead's newest snapshot is one step down the (lead_id, scored_at) index, whatever
    # the length of its history: the query runs while SQLite's write lock is held.
    scores = aliased(ScoreSnapshot)
    newest_id = (
        select(scores.id)
        .where(scores.lead_id == Lead.lead_id)
        .order_by(scores.scored_at.desc(), scores.id.desc())
        .limit(1)
        .correlate(Lead)
        .scalar_subquery()
    )
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        newest_ids = select(newest_id).where(Lead.lead_id.in_(chunk))
        query = select(
            ScoreSnapshot.id,
            ScoreSnapshot.lead_id,
            ScoreSnapshot.score,
            ScoreSnapshot.grade,
            ScoreSnapshot.scored_at,
            ScoreSnapshot.model_version,
        ).where(ScoreSnapshot.id.in_(newest_ids))
        for row in session.execute(query):
            found[row.lead_id] = StoredScore(
                row.id, row.score, row.grade, row.scored_at, row.model_version
            )
    return found


def add_deliveries(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        session.connection().execute(insert(_DELIVERIES), list(rows))


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a dispatcher took, to send now."""

    id: int
    event: str
    lead_id: str
    payload: dict[str, Any]
    #: Attempts made before this one.
    attempts: int
    #: The claim: no other dispatcher takes the delivery before then, and the attempt's
    #: result is recorded only while the claim is still this one.
    claimed_until: datetime


def claim_due(
    session: Session, now: datetime, claimed_until: datetime, limit: int
) -> list[ClaimedDelivery]:
    """Take up to `limit` pending deliveries due by `now` that no dispatcher holds, until
    `claimed_until`, oldest due first. One UPDATE: two dispatchers (processes of `--workers`,
    or services sharing a store) never take one delivery at once. On PostgreSQL a dispatcher
    skips the rows another is taking (`FOR UPDATE SKIP LOCKED`) and takes the next ones; on
    SQLite, which writes one transaction at a time, the second claim finds them taken."""
    claimable = (
        _DELIVERIES.c.status == DeliveryStatus.PENDING.value,
        _DELIVERIES.c.next_attempt_at <= now,
        or_(_DELIVERIES.c.claimed_until.is_(None), _DELIVERIES.c.claimed_until <= now),
    )
    # A CTE, materialized: PostgreSQL may run a subquery of the WHERE again for each row,
    # and the rows this UPDATE has changed then no longer match it, so LIMIT would take more.
    due = (
        select(_DELIVERIES.c.id)
        .where(*claimable)
        .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    statement = (
        update(_DELIVERIES)
        # The conditions again, as a safeguard: a row claimed by another since it was read is
        # left out.
        .where(_DELIVERIES.c.id.in_(select(due.c.id)), *claimable)
        .values(claimed_until=claimed_until)
        .returning(
            _DELIVERIES.c.id,
            _DELIVERIES.c.event,
            _DELIVERIES.c.lead_id,
            _DELIVERIES.c.payload,
            _DELIVERIES.c.attempts,
        )
    )
    rows = session.execute(statement).all()
    return sorted(
        (
            ClaimedDelivery(r.id, r.event, r.lead_id, r.payload, r.attempts, claimed_until)
            for r in rows
        ),
        key=lambda claimed: claimed.id,
    )


def record_attempt(session: Session, claimed: ClaimedDelivery, changes: Mapping[str, Any]) -> bool:
    """Count one attempt of `claimed` with its result (`changes`: status, next_attempt_at,
    last_attempt_at, last_status_code, last_error, delivered_at) and release the claim; False
    (nothing written) if the claim expired and another dispatcher took the delivery since, or
    the delivery was erased with its lead."""
    statement = (
        update(_DELIVERIES)
        .where(_DELIVERIES.c.id == claimed.id, _DELIVERIES.c.claimed_until == claimed.claimed_until)
        .values(attempts=_DELIVERIES.c.attempts + 1, claimed_until=None, **changes)
    )
    return session.execute(statement).rowcount == 1


def still_held(session: Session, claimed: Sequence[ClaimedDelivery]) -> set[int]:
    """The ids of those of `claimed` their claims still hold: not a delivery erased with its
    lead since it was claimed, nor one another dispatcher took once the claim expired."""
    if not claimed:
        return set()
    query = select(_DELIVERIES.c.id, _DELIVERIES.c.claimed_until).where(
        _DELIVERIES.c.id.in_([one.id for one in claimed])
    )
    until = {row.id: row.claimed_until for row in session.execute(query)}
    return {one.id for one in claimed if until.get(one.id) == one.claimed_until}


def delivery_exists(session: Session, delivery_id: int) -> bool:
    """Whether the delivery is still stored (its lead's erasure removes it)."""
    query = select(_DELIVERIES.c.id).where(_DELIVERIES.c.id == delivery_id)
    return session.execute(query).first() is not None


def deliveries_page(
    session: Session,
    status: DeliveryStatus | None,
    lead_id: str | None,
    before_id: int | None,
    limit: int,
) -> list[WebhookDelivery]:
    """Up to `limit` deliveries, newest first, written before `before_id` (one page), of
    `status` and of `lead_id` if given."""
    query = select(WebhookDelivery)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    if lead_id is not None:
        query = query.where(WebhookDelivery.lead_id == lead_id)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    return list(session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)))
