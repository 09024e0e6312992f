"""What the CRM routes do: read what HubSpot or Salesforce sent with the mapping, store the
events that can be stored as `POST /v1/outcomes` stores them, and name the rest.

Service functions (I/O at this edge): the CRM's own modules are pure, and the routes translate
HTTP. The routes run them in a worker thread, as FastAPI runs a route that is not `async`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from features.pii import scrub
from serving import services
from serving.crm import CrmSetup, MappedRecords, Note, NotMapped, checked, hubspot, salesforce

log = logging.getLogger("leadloop.crm")

HOW_TO_SET_UP = (
    "set LEADLOOP_CRM_MAPPING to a mapping file (examples/crm/stages.yaml is one) and restart"
)


class StoreBusy(RuntimeError):
    """The store cannot take the events now (locked, unreachable): the CRM should retry."""


class OtherOrganization(PermissionError):
    """A Salesforce message from another organization than the one set up."""


@dataclass(frozen=True)
class Stored:
    """What became of a CRM request's records."""

    #: Distinct events of the request the store now holds as sent (stored now or before).
    accepted: int
    ignored: list[Note] = field(default_factory=list)
    skipped: list[Note] = field(default_factory=list)
    dropped: list[Note] = field(default_factory=list)


def take_hubspot(
    sessions: sessionmaker[Session], crm: CrmSetup, body: bytes, pii_key: bytes, now: datetime
) -> Stored:
    """Store the outcome of the HubSpot deal or contact in `body`, if the mapping lists its
    stage. PayloadError if it is not one, NotMapped if the mapping has no section for it,
    StoreBusy if the store cannot take it now. The signature is the route's to check."""
    if crm.mapping is None or crm.mapping.hubspot is None:
        raise NotMapped(f"HubSpot outcomes are not set up here: {HOW_TO_SET_UP}")
    records = hubspot.outcome_records(hubspot.parse_body(body), crm.mapping.hubspot)
    return _store(sessions, records, pii_key, now)


def take_salesforce(
    sessions: sessionmaker[Session], crm: CrmSetup, body: bytes, pii_key: bytes, now: datetime
) -> Stored:
    """Store the outcome of each notification of the outbound message in `body` whose stage
    the mapping lists, and log each record left out (Salesforce reads only the `Ack`).
    PayloadError, NotMapped and StoreBusy as `take_hubspot`; OtherOrganization if the message
    comes from another organization than the one set up."""
    if crm.mapping is None or crm.mapping.salesforce is None:
        raise NotMapped(f"Salesforce outcomes are not set up here: {HOW_TO_SET_UP}")
    message = salesforce.parse_outbound_message(body)
    if not _same_organization(crm.salesforce_organization_id, message.organization_id):
        raise OtherOrganization("the message comes from another Salesforce organization")
    records = salesforce.outcome_records(message, crm.mapping.salesforce)
    stored = _store(sessions, records, pii_key, now)
    for note in stored.skipped:  # one line each, whatever the CRM's values hold
        log.warning("salesforce: skipped %s: %s", _line(note.record), _line(scrub(note.reason)))
    for note in stored.dropped:
        log.warning("salesforce: a value of %s: %s", _line(note.record), _line(scrub(note.reason)))
    for note in stored.ignored:
        log.info("salesforce: ignored %s: %s", _line(note.record), _line(note.reason))
    return stored


def _store(
    sessions: sessionmaker[Session], records: MappedRecords, pii_key: bytes, now: datetime
) -> Stored:
    """Store what `records` holds that can be stored; name the rest."""
    valid = checked(records)
    if not valid.candidates:
        return Stored(0, valid.ignored, valid.skipped, valid.dropped)
    events = [candidate.event for candidate in valid.candidates]
    try:
        result = services.record_storable_outcomes(sessions, events, pii_key, now)
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        # The driver's first line only: the statement's parameters may hold lead ids.
        cause = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        log.warning("the store cannot take CRM outcomes now: %s", cause)
        raise StoreBusy(
            "the store cannot take outcomes now: nothing was stored, send again"
        ) from exc
    skipped = valid.skipped + [
        Note(valid.candidates[index].record, why, events[index]["event_id"])
        for index, why in result.skipped.items()
    ]
    # A value left out of an event that is not stored after all is no news.
    left_out = {events[index]["event_id"] for index in result.skipped}
    dropped = [note for note in valid.dropped if note.event_id not in left_out]
    return Stored(result.accepted, valid.ignored, skipped, dropped)


def _same_organization(expected: str | None, sent: str) -> bool:
    """Whether `sent` is the expected org: ids are compared in their 15-character form (the
    18-character form adds a checksum of the case)."""
    return expected is None or expected[:15] == sent[:15]


def _line(text: str) -> str:
    return " ".join(text.split())
