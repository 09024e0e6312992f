"""What the API's routes do: score and snapshot leads, ingest outcomes, read a lead back.

Each function opens one transaction, so a request stores all of its rows or none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from features.phrases import Phrasebook
from features.pii import scrub
from features.schema import LeadSchema
from features.validation import FUTURE_TOLERANCE, LEAD_ID_KEY, has_control_characters
from models.registry import LoadedScorer
from models.scorer import LeadScore
from store import erasure, repository
from store.records import json_value
from store.snapshot_writer import ScoredBatch, ScoredLead


class ConflictingEventsError(ValueError):
    """Event ids already used (stored, or earlier in the batch) with another payload."""

    def __init__(self, event_ids: list[str]) -> None:
        super().__init__(f"event ids used before with another payload: {', '.join(event_ids)}")
        self.event_ids = event_ids


class InvalidOutcomesError(ValueError):
    """Outcome events that cannot be stored; `problems` maps an item index to (field, message)."""

    def __init__(self, problems: list[tuple[int, str, str]]) -> None:
        super().__init__("; ".join(f"outcomes[{i}].{field}: {msg}" for i, field, msg in problems))
        self.problems = problems


def reason_documents(scored: LeadScore, words: Phrasebook) -> list[dict[str, Any]]:
    """A score's reasons as the API answers and the store keeps them."""
    return [
        {
            "field": r.field,
            "value": json_value(r.value),
            "impact": r.impact,
            "text": words.text(r.field, r.value, r.impact),
        }
        for r in scored.reasons or []
    ]


@dataclass(frozen=True)
class ScoredRequest:
    """A request's scores as answered, and the batch the store keeps of them."""

    answer: list[dict[str, Any]]
    batch: ScoredBatch


def score_leads(
    model: LoadedScorer,
    schema: LeadSchema,
    leads: Sequence[dict[str, Any]],
    reasons: bool,
    now: datetime,
) -> ScoredRequest:
    """Score leads: the answer, with reasons in `schema`'s words when asked, and each lead with
    its snapshot for the store (the caller hands it to the snapshot writer)."""
    words = Phrasebook.of(schema, model.scorer.encoder) if reasons else None
    scored = [
        ScoredLead(
            lead=lead,
            probability=one.probability,
            score=one.score,
            grade=one.grade,
            reasons=None if words is None else reason_documents(one, words),
        )
        for lead, one in zip(leads, model.scorer.score(leads, reasons), strict=True)
    ]
    answer = [
        {
            "lead_id": one.lead[LEAD_ID_KEY],
            "probability": one.probability,
            "score": one.score,
            "grade": one.grade,
            "reasons": one.reasons,
        }
        for one in scored
    ]
    return ScoredRequest(answer, ScoredBatch(scored, model.version, now))


@dataclass(frozen=True)
class RecordedOutcomes:
    """The answer to a batch of outcomes: the same whether the batch is new or a replay."""

    #: Distinct events of the batch the store now holds as posted (stored now or before).
    accepted: int
    #: Events repeated within the batch.
    duplicates: int


def record_outcomes(
    sessions: sessionmaker[Session],
    outcomes: Sequence[dict[str, Any]],
    pii_key: bytes,
    now: datetime,
) -> RecordedOutcomes:
    """Store outcome events once each, all or none: none if one is for a lead the store has
    never seen, dated before the lead was created (beyond clock skew), or reuses an
    `event_id` with another payload (within the batch, stored before, or by a request racing
    this one: the check runs after the insert, in the same transaction)."""
    rows = [_stored_form(event, now) for event in outcomes]
    with sessions.begin() as session:
        lead_ids = [event["lead_id"] for event in outcomes]
        created = repository.created_times(session, lead_ids)
        erased = erasure.erased_ids(session, (i for i in lead_ids if i not in created), pii_key)
        problems = [_outcome_problem(i, event, created, erased) for i, event in enumerate(outcomes)]
        found = [problem for problem in problems if problem is not None]
        if found:
            raise InvalidOutcomesError(found)
        repository.add_outcomes(session, rows)
        stored = repository.stored_events(session, (row["event_id"] for row in rows))
        conflicts = sorted(
            {row["event_id"] for row in rows if _payload(row) != stored[row["event_id"]]}
        )
        if conflicts:
            raise ConflictingEventsError(conflicts)
    distinct = len(stored)
    return RecordedOutcomes(accepted=distinct, duplicates=len(rows) - distinct)


def _stored_form(event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The `outcome_events` row of a posted event: the CRM's `sequence` kept as `crm_sequence`."""
    row = {key: value for key, value in event.items() if key != "sequence"}
    reason = event.get("reason")
    return row | {
        "reason": scrub(reason) if reason else reason,
        "crm_sequence": event.get("sequence"),
        "received_at": now,
    }


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in repository.EVENT_PAYLOAD}


def _outcome_problem(
    index: int, event: dict[str, Any], created: dict[str, datetime], erased: set[str]
) -> tuple[int, str, str] | None:
    lead_created = created.get(event["lead_id"])
    if event["lead_id"] in erased:
        return index, "lead_id", "the lead was erased on request: nothing of it is stored"
    if lead_created is None:
        return index, "lead_id", f"unknown lead {event['lead_id']!r}: score it first"
    if event["occurred_at"] < lead_created - FUTURE_TOLERANCE:
        return (
            index,
            "occurred_at",
            f"is before the lead was created ({lead_created:%Y-%m-%d %H:%M} UTC)",
        )
    return None


def erase_lead(
    sessions: sessionmaker[Session], lead_id: str, pii_key: bytes, now: datetime
) -> erasure.ErasedRows | None:
    """Erase a lead everywhere and keep it out from now on; None if the store holds none."""
    with sessions.begin() as session:
        return erasure.erase_lead(session, lead_id, pii_key, now)


def lead_history(
    sessions: sessionmaker[Session],
    lead_id: str,
    before: tuple[datetime, int | None] | None,
    limit: int,
) -> dict[str, Any] | None:
    """One page of the lead's scores, newest first, and where the next page starts (the last
    score's time and id; None at the first score); None if the store holds no such lead."""
    if has_control_characters(lead_id):  # never stored; PostgreSQL refuses to compare a NUL
        return None
    moment, before_id = before if before is not None else (None, None)
    with sessions() as session:
        if repository.get_lead(session, lead_id) is None:
            return None
        page = repository.snapshots_before(session, lead_id, moment, before_id, limit + 1)
        last = page[limit - 1] if len(page) > limit else None
        return {
            "lead_id": lead_id,
            "scores": page[:limit],
            "next_before": last.scored_at if last else None,
            "next_before_id": last.id if last else None,
        }


def lead_view(sessions: sessionmaker[Session], lead_id: str) -> dict[str, Any] | None:
    """The lead, its latest score with reasons and its latest outcome; None if unknown.

    The snapshot and outcome are returned as loaded rows: the response model reads their
    attributes, so the API shows exactly what the store holds.
    """
    if has_control_characters(lead_id):  # never stored; PostgreSQL refuses to compare a NUL
        return None
    with sessions() as session:
        lead = repository.get_lead(session, lead_id)
        if lead is None:
            return None
        return {
            "lead_id": lead.lead_id,
            "created_at": lead.created_at,
            "source": lead.source,
            "lead_type": lead.lead_type,
            "latest_score": repository.latest_snapshot(session, lead_id),
            "outcome": repository.latest_outcome(session, lead_id),
            **repository.first_lifecycle_times(session, lead_id),
        }
