"""What the API's routes do: score and snapshot leads, ingest outcomes, read a lead back.

Each function opens one transaction, so a request stores all of its rows or none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from features.phrases import Phrasebook
from features.pii import scrub
from features.schema import LeadSchema
from features.validation import FUTURE_TOLERANCE, LEAD_ID_KEY
from models.registry import LoadedScorer
from models.scorer import LeadScore
from store import erasure, repository
from store.disqualified import PreviousDisqualification
from store.records import json_value
from store.snapshot_writer import ScoredBatch, ScoredLead
from store.tables import OutcomeEvent


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
    disqualified: Callable[[Mapping[str, Any]], PreviousDisqualification | None],
) -> ScoredRequest:
    """Score leads: the answer, with reasons in `schema`'s words when asked and whether sales
    disqualified the lead (or its company) before, and each lead with its snapshot for the
    store (the caller hands it to the snapshot writer)."""
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
            "previously_disqualified": _flag_document(disqualified(one.lead)),
        }
        for one in scored
    ]
    return ScoredRequest(answer, ScoredBatch(scored, model.version, now))


def _flag_document(flag: PreviousDisqualification | None) -> dict[str, Any] | None:
    if flag is None:
        return None
    at = flag.at.astimezone(UTC).isoformat().replace("+00:00", "Z")  # as the API writes times
    return {"at": at, "reason": flag.reason, "matched": flag.matched}


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
    never seen (or erased), dated before the lead was created (beyond clock skew), or reuses an
    `event_id` with another payload (within the batch, stored before, or by a request racing
    this one: the check runs after the insert, in the same transaction)."""
    rows = [_stored_form(event, now) for event in outcomes]
    with sessions.begin() as session:
        problems = _store_outcomes(session, outcomes, rows, pii_key)
        invalid = [(i, field, msg) for i, (field, msg) in problems.items() if field != _REUSED]
        if invalid:
            raise InvalidOutcomesError(invalid)
        if problems:
            raise ConflictingEventsError(sorted({rows[index]["event_id"] for index in problems}))
    distinct = len({row["event_id"] for row in rows})
    return RecordedOutcomes(accepted=distinct, duplicates=len(rows) - distinct)


@dataclass(frozen=True)
class PartlyRecorded:
    """What became of a CRM's events: those stored (now or before), and those that never can
    be, with why."""

    #: Distinct events the store now holds as sent (stored now or before).
    accepted: int
    #: The index of each event that was not stored, and why.
    skipped: dict[int, str]


def record_storable_outcomes(
    sessions: sessionmaker[Session],
    outcomes: Sequence[dict[str, Any]],
    pii_key: bytes,
    now: datetime,
) -> PartlyRecorded:
    """Store the outcome events that can be stored, once each, in one transaction, and name
    the others: an unknown or erased lead, a time before the lead was created, an `event_id`
    stored before (or earlier in `outcomes`) with another payload. Nothing stored is changed:
    of two payloads of one `event_id`, the first stored is kept. For a CRM that would resend
    forever what `record_outcomes` refuses whole."""
    rows = [_stored_form(event, now) for event in outcomes]
    with sessions.begin() as session:
        problems = _store_outcomes(session, outcomes, rows, pii_key)
    skipped = {
        index: message if field in _SENTENCES else f"{field} {message}"
        for index, (field, message) in problems.items()
    }
    distinct = {row["event_id"] for index, row in enumerate(rows) if index not in skipped}
    return PartlyRecorded(accepted=len(distinct), skipped=skipped)


#: The field a problem names when the event's id was stored before with another payload.
_REUSED = "event_id"
#: Fields whose problems read as sentences of their own; the others are said of the field.
_SENTENCES = {"lead_id", _REUSED}


def _store_outcomes(
    session: Session,
    outcomes: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    pii_key: bytes,
) -> dict[int, tuple[str, str]]:
    """Add the `rows` (the stored form of `outcomes`) that can be stored, and return the field
    and problem of each other by its index, in order: an unknown or erased lead, a time before
    the lead was created, an `event_id` stored before (or earlier in `rows`) with another
    payload, which stays as it was."""
    lead_ids = [event["lead_id"] for event in outcomes]
    created = repository.created_times(session, lead_ids)
    erased = erasure.erased_ids(session, (i for i in lead_ids if i not in created), pii_key)
    problems: dict[int, tuple[str, str]] = {}
    for index, event in enumerate(outcomes):
        problem = _outcome_problem(event, created, erased)
        if problem is not None:
            problems[index] = problem
    storable = {index: row for index, row in enumerate(rows) if index not in problems}
    while True:
        try:
            repository.add_outcomes(session, list(storable.values()))
            break
        except repository.UnknownLeadsError as exc:
            # Erased (or removed) since `created_times` read them: named as any such lead.
            gone = set(exc.lead_ids)
            erased |= erasure.erased_ids(session, gone, pii_key)
            for index in [i for i, row in storable.items() if row["lead_id"] in gone]:
                problems[index] = _missing_lead(storable.pop(index)["lead_id"], erased)
    stored = repository.stored_events(session, (row["event_id"] for row in storable.values()))
    for index, row in storable.items():
        kept = stored[row["event_id"]]
        if _payload(row) != kept:
            problems[index] = (
                _REUSED,
                f"event {row['event_id']} was stored before with other values "
                f"({kept['outcome']} at {kept['occurred_at']:%Y-%m-%d %H:%M}): that one is kept",
            )
    return dict(sorted(problems.items()))


#: The longest reason the store's column holds.
_REASON_LENGTH = OutcomeEvent.__table__.c.reason.type.length


def _stored_form(event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The `outcome_events` row of a posted event: the CRM's `sequence` kept as `crm_sequence`,
    e-mail addresses and phone numbers in the reason masked, then the reason cut to what the
    column holds (a mask can be longer than what it hides: `a@b.co` is `[email]`)."""
    row = {key: value for key, value in event.items() if key != "sequence"}
    reason = event.get("reason")
    return row | {
        "reason": scrub(reason)[:_REASON_LENGTH] if reason else reason,
        "crm_sequence": event.get("sequence"),
        "received_at": now,
    }


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in repository.EVENT_PAYLOAD}


def _outcome_problem(
    event: dict[str, Any], created: dict[str, datetime], erased: set[str]
) -> tuple[str, str] | None:
    lead_created = created.get(event["lead_id"])
    if lead_created is None:
        return _missing_lead(event["lead_id"], erased)
    if event["occurred_at"] < lead_created - FUTURE_TOLERANCE:
        return "occurred_at", f"is before the lead was created ({lead_created:%Y-%m-%d %H:%M} UTC)"
    return None


def _missing_lead(lead_id: str, erased: set[str]) -> tuple[str, str]:
    if lead_id in erased:
        return "lead_id", "the lead was erased on request: nothing of it is stored"
    return "lead_id", f"unknown lead {lead_id!r}: score it first"


def erase_lead(
    sessions: sessionmaker[Session], lead_id: str, pii_key: bytes, now: datetime
) -> erasure.ErasedRows | None:
    """Erase a lead everywhere and keep it out from now on; None if the store holds none."""
    with sessions.begin() as session:
        return erasure.erase_lead(session, lead_id, pii_key, now)
