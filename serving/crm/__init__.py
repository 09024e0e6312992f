"""Outcomes straight from the CRM: what a HubSpot workflow webhook or a Salesforce outbound
message says, turned into leadloop's outcome events by the mapping file (`mapping.py`).

The CRM's modules are pure: they take the request's bytes and headers as values, the time as a
parameter, and return candidate events with a note for every record they leave out. The
service functions of `ingest.py` store them with `serving.services.record_storable_outcomes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from features.pii import scrub
from features.validation import in_utc
from serving.crm.mapping import CrmMapping, validation_problems
from serving.schemas import OutcomeIn

#: The longest reason an outcome takes (`OutcomeIn.reason`); a CRM's longer one is cut there.
MAX_REASON = 500
#: Fields an event is stored without when the CRM's value cannot be stored: the CRM is answered
#: 2xx and never sends the record again, so refusing the event would lose the outcome for good.
OPTIONAL_FIELDS = frozenset({"amount", "reason"})


class PayloadError(ValueError):
    """The body is not what the CRM sends (not JSON or XML, or not its shape): a 400, which
    no retry can fix."""


class NotMapped(LookupError):
    """The mapping file has no section for what the CRM sent: a 404 saying what to add."""


@dataclass(frozen=True)
class CrmSetup:
    """What the CRM routes need from the settings, read once at start-up."""

    #: None: LEADLOOP_CRM_MAPPING is unset, and the routes answer 404 saying so.
    mapping: CrmMapping | None = None
    #: The HubSpot app's client secret; None: signatures are not checked.
    hubspot_secret: bytes | None = None
    #: The only Salesforce organization whose messages are taken; None: any.
    salesforce_organization_id: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One record of the CRM as a leadloop outcome event, not yet checked."""

    #: The CRM's record, as its users would look it up ("deal 1234", "Opportunity 006...").
    record: str
    #: An outcome event as `POST /v1/outcomes` takes it (`OutcomeIn`'s fields).
    event: dict[str, Any]


@dataclass(frozen=True)
class Note:
    """A record left out, or a value of it, and why."""

    record: str
    reason: str
    event_id: str | None = None


@dataclass
class MappedRecords:
    """What a CRM request says: the events to store, and the records left out."""

    candidates: list[Candidate] = field(default_factory=list)
    #: Records whose stage the mapping does not list: the normal course of a deal.
    ignored: list[Note] = field(default_factory=list)
    #: Records that can never be stored as sent (no lead id, no time, an unknown lead...).
    skipped: list[Note] = field(default_factory=list)
    #: Values left out of events that are stored all the same (an amount out of range...).
    dropped: list[Note] = field(default_factory=list)


def iso_time(text: str) -> datetime | None:
    """The ISO 8601 date or time in `text`, in UTC (a date or a time without zone is read as
    UTC); None if it is none, or has no UTC time."""
    try:
        return in_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def checked(records: MappedRecords) -> MappedRecords:
    """`records` with only the candidates the API's own outcome model accepts (as
    `OutcomeIn.model_dump()`, what `POST /v1/outcomes` stores). A candidate whose amount or
    reason it refuses is kept without that value, with a note in `dropped`; one whose id, lead
    id, outcome or time it refuses is skipped, with a note naming the fields."""
    result = MappedRecords(
        ignored=list(records.ignored), skipped=list(records.skipped), dropped=list(records.dropped)
    )
    for candidate in records.candidates:
        event = _reason_cut(candidate.event)
        record, event_id = candidate.record, event.get("event_id")
        try:
            valid = OutcomeIn.model_validate(event)
        except ValidationError as exc:
            wrong = {error["loc"][0] for error in exc.errors() if error["loc"]}
            problems = validation_problems(exc)
            if not wrong or not wrong <= OPTIONAL_FIELDS:
                result.skipped.append(Note(record, problems, event_id))
                continue
            result.dropped.append(Note(record, f"{problems}: stored without it", event_id))
            valid = OutcomeIn.model_validate(event | dict.fromkeys(wrong))
        result.candidates.append(Candidate(record, valid.model_dump()))
    return result


def _reason_cut(event: dict[str, Any]) -> dict[str, Any]:
    """`event` with a reason longer than an outcome takes masked, then cut: cut first, an
    e-mail address across the cut would keep its unmasked half."""
    reason = event.get("reason")
    if isinstance(reason, str) and len(reason) > MAX_REASON:
        return event | {"reason": scrub(reason)[:MAX_REASON]}
    return event
