"""Reads and writes of leads, score snapshots, outcome events and imports, on every backend.

Functions take an open `Session`; the caller owns the transaction, so a request either stores
everything it was sent or nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Insert, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from features.validation import EARLIEST_TIME
from store.outcomes import CLOSING_OUTCOMES, LIFECYCLE_EVENTS, Outcome, latest_closing_outcomes
from store.tables import Import, Lead, OutcomeEvent, ScoreSnapshot

_DIALECT_INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
#: Ids per IN (...) query, well under SQLite's limit on bound parameters.
_IN_CHUNK = 5_000
#: Leads' attributes read per round trip when looking for fields.
_ATTRIBUTES_BATCH = 2_000

log = logging.getLogger("leadloop.store")


class UnknownLeadsError(LookupError):
    """Outcomes were posted for leads the store has never seen."""

    def __init__(self, lead_ids: Sequence[str]) -> None:
        super().__init__(f"unknown lead ids: {', '.join(lead_ids)}")
        self.lead_ids = list(lead_ids)


@dataclass(frozen=True)
class IngestCounts:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class TrainingFrames:
    """Closed leads as stored: their rows, their snapshots and their closing outcomes."""

    leads: pd.DataFrame  # lead_id, created_at, attributes
    snapshots: pd.DataFrame  # lead_id, scored_at, features
    outcomes: pd.DataFrame  # lead_id, event_id, outcome, occurred_at, crm_sequence
    #: Leads without a closing outcome (lead_id, created_at, attributes): never trained on,
    #: but the leakage guard compares them with closed ones.
    open_leads: pd.DataFrame
    #: Stored rows left out because a time of theirs is unreadable (see `READABLE_TIMES`).
    skipped: int = 0


def _insert(session: Session, table: type) -> Insert:
    """The dialect's INSERT (for ON CONFLICT) on the Core table: the ORM's bulk path is slower."""
    dialect = session.get_bind().dialect.name
    try:
        return _DIALECT_INSERT[dialect](table.__table__)
    except KeyError:
        message = f"leadloop's store supports SQLite and PostgreSQL, not {dialect}"
        raise NotImplementedError(message) from None


def count_leads(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Lead)) or 0


def fields_in_leads(session: Session, wanted: Collection[str]) -> set[str]:
    """Those of `wanted` that hold a value in at least one stored lead's attributes.

    Reads the leads in batches and stops once every wanted field has been seen, so a store
    that fits its schema answers after the first batch.
    """
    looked_for, found = set(wanted), set()
    query = select(Lead.attributes).execution_options(yield_per=_ATTRIBUTES_BATCH)
    with session.scalars(query) as rows:  # closes the cursor when the loop stops early
        for attributes in rows:
            found.update(name for name in looked_for - found if attributes.get(name) is not None)
            if found == looked_for:
                break
    return found


def add_import(session: Session, row: Mapping[str, Any]) -> None:
    """Record one import (file, schema path and text, lead count)."""
    session.connection().execute(_insert(session, Import), [dict(row)])


def latest_import(session: Session) -> Import | None:
    """The import recorded last, if the store has any."""
    return session.scalars(select(Import).order_by(Import.id.desc()).limit(1)).first()


def upsert_leads(
    session: Session, rows: Sequence[Mapping[str, Any]], replace_attributes: bool = True
) -> None:
    """Insert new leads; for known ones refresh hashes, keep `created_at`.

    An import replaces a known lead's attributes (the export is the CRM's current truth). The
    scoring API does not (`replace_attributes=False`): a lead re-scored after its outcome would
    otherwise put post-outcome values in its stored row, which training may fall back on;
    what each scoring saw is kept, with its time, in the score snapshots.
    """
    if not rows:
        return
    statement = _insert(session, Lead)
    excluded = statement.excluded
    refreshed = {
        "pii_hashes": excluded.pii_hashes,
        # A lead sent again without its address keeps the domain it was known by.
        "email_domain_hash": func.coalesce(excluded.email_domain_hash, Lead.email_domain_hash),
        "updated_at": excluded.updated_at,
    }
    if replace_attributes:
        refreshed |= {
            "source": excluded.source,
            "lead_type": excluded.lead_type,
            "attributes": excluded.attributes,
        }
    statement = statement.on_conflict_do_update(index_elements=["lead_id"], set_=refreshed)
    # In key order: two requests writing the same leads lock them in one order, never in
    # opposite orders (a deadlock on PostgreSQL).
    ordered = sorted(_merged_per_key(rows, "lead_id", refreshed), key=lambda r: r["lead_id"])
    session.connection().execute(statement, ordered)


def add_snapshots(
    session: Session, rows: Sequence[Mapping[str, Any]], return_ids: bool = False
) -> list[int]:
    """Store score snapshots; with `return_ids`, their new ids in `rows`' order (SQLAlchemy
    matches them to the rows on SQLite and PostgreSQL alike), else []."""
    if not rows:
        return []
    statement = _insert(session, ScoreSnapshot)
    if not return_ids:
        session.connection().execute(statement, list(rows))
        return []
    statement = statement.returning(ScoreSnapshot.__table__.c.id, sort_by_parameter_order=True)
    return list(session.connection().execute(statement, list(rows)).scalars())


def add_outcomes(session: Session, rows: Sequence[Mapping[str, Any]]) -> IngestCounts:
    """Store outcome events once each: an `event_id` seen before (or twice here) adds nothing."""
    if not rows:
        return IngestCounts(0, 0)
    lead_ids = sorted({r["lead_id"] for r in rows})
    known: set[str] = set()
    for start in range(0, len(lead_ids), _IN_CHUNK):
        chunk = lead_ids[start : start + _IN_CHUNK]
        known.update(session.scalars(select(Lead.lead_id).where(Lead.lead_id.in_(chunk))))
    unknown = [i for i in lead_ids if i not in known]
    if unknown:
        raise UnknownLeadsError(unknown)
    statement = (
        _insert(session, OutcomeEvent)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(OutcomeEvent.__table__.c.event_id)
    )
    ordered = sorted(rows, key=lambda r: r["event_id"])  # one lock order: see upsert_leads
    accepted = len(session.connection().execute(statement, ordered).all())
    return IngestCounts(accepted=accepted, duplicates=len(rows) - accepted)


def created_times(session: Session, lead_ids: Iterable[str]) -> dict[str, datetime]:
    """When each of the stored leads among `lead_ids` was created (unknown ids are absent)."""
    wanted = sorted(set(lead_ids))
    found: dict[str, datetime] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        rows = session.execute(select(Lead.lead_id, Lead.created_at).where(Lead.lead_id.in_(chunk)))
        found.update({row.lead_id: row.created_at for row in rows})
    return found


def get_lead(session: Session, lead_id: str) -> Lead | None:
    return session.get(Lead, lead_id)


def latest_snapshot(session: Session, lead_id: str) -> ScoreSnapshot | None:
    """The lead's newest score; among equal times the last written."""
    newest_first = (ScoreSnapshot.scored_at.desc(), ScoreSnapshot.id.desc())
    query = select(ScoreSnapshot).where(ScoreSnapshot.lead_id == lead_id)
    return session.scalars(query.order_by(*newest_first).limit(1)).first()


#: The largest id a 64-bit key holds (PostgreSQL refuses to compare a larger number); as
#: `before_id`, it makes `snapshots_before` take the scores at `before` too.
MAX_ID = 2**63 - 1


def snapshots_before(
    session: Session, lead_id: str, before: datetime | None, before_id: int | None, limit: int
) -> list[ScoreSnapshot]:
    """Up to `limit` of the lead's scores, newest first (among equal times the last written
    first), scored before `before` (or at it and written before `before_id`): one page of its
    history. One request that scores a lead twice stores both scores at one time."""
    query = select(ScoreSnapshot).where(ScoreSnapshot.lead_id == lead_id)
    if before is not None:
        earlier = ScoreSnapshot.scored_at < before
        if before_id is not None:
            earlier = or_(
                earlier, and_(ScoreSnapshot.scored_at == before, ScoreSnapshot.id < before_id)
            )
        query = query.where(earlier)
    newest_first = (ScoreSnapshot.scored_at.desc(), ScoreSnapshot.id.desc())
    return list(session.scalars(query.order_by(*newest_first).limit(limit)))


def latest_outcome(session: Session, lead_id: str) -> OutcomeEvent | None:
    """The lead's latest closing outcome (won, lost or disqualified), by the rule training
    reads it with (`store.outcomes.in_event_order`)."""
    closing = OutcomeEvent.outcome.in_(CLOSING_OUTCOMES)
    events = session.scalars(
        select(OutcomeEvent).where(OutcomeEvent.lead_id == lead_id, closing)
    ).all()
    if not events:
        return None
    columns = ["lead_id", "event_id", "outcome", "occurred_at", "crm_sequence"]
    frame = pd.DataFrame([[getattr(e, c) for c in columns] for e in events], columns=columns)
    last = latest_closing_outcomes(frame)["event_id"].iloc[0]
    return next(e for e in events if e.event_id == last)


#: What an outcome event says; the same `event_id` must always say the same.
EVENT_PAYLOAD = ("lead_id", "outcome", "occurred_at", "amount", "reason", "crm_sequence")


def stored_events(session: Session, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The payload (`EVENT_PAYLOAD`) of each stored event among `event_ids`."""
    wanted = sorted(set(event_ids))
    columns = [getattr(OutcomeEvent, c) for c in EVENT_PAYLOAD]
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        query = select(OutcomeEvent.event_id, *columns).where(OutcomeEvent.event_id.in_(chunk))
        for row in session.execute(query):
            found[row.event_id] = {c: getattr(row, c) for c in EVENT_PAYLOAD}
    return found


def first_lifecycle_times(session: Session, lead_id: str) -> dict[str, datetime]:
    """When the lead was first handed over to sales, and first contacted after that."""
    rows = session.execute(
        select(OutcomeEvent.outcome, OutcomeEvent.occurred_at)
        .where(OutcomeEvent.lead_id == lead_id, OutcomeEvent.outcome.in_(LIFECYCLE_EVENTS))
        .order_by(OutcomeEvent.occurred_at, OutcomeEvent.id)
    ).all()
    handed = next((at for kind, at in rows if kind == Outcome.HANDED_OVER), None)
    contacted = next(
        (at for kind, at in rows if kind == Outcome.CONTACTED and (handed is None or at >= handed)),
        None,
    )
    found = {"handed_over": handed, "contacted": contacted}
    return {kind: at for kind, at in found.items() if at is not None}


def training_frames(session: Session) -> TrainingFrames:
    """Everything the point-in-time join needs about leads that have a closing outcome."""
    closing = OutcomeEvent.outcome.in_(CLOSING_OUTCOMES)
    closed_ids = select(OutcomeEvent.lead_id).where(closing).distinct()
    outcomes = session.execute(
        select(
            OutcomeEvent.lead_id,
            OutcomeEvent.event_id,
            OutcomeEvent.outcome,
            OutcomeEvent.occurred_at,
            OutcomeEvent.crm_sequence,
        ).where(closing)
    ).all()
    leads = session.execute(
        select(Lead.lead_id, Lead.created_at, Lead.attributes).where(Lead.lead_id.in_(closed_ids))
    ).all()
    snapshots = session.execute(
        select(ScoreSnapshot.lead_id, ScoreSnapshot.scored_at, ScoreSnapshot.features).where(
            ScoreSnapshot.lead_id.in_(closed_ids)
        )
    ).all()
    open_leads = session.execute(
        select(Lead.lead_id, Lead.created_at, Lead.attributes).where(
            Lead.lead_id.not_in(closed_ids)
        )
    ).all()
    lead_columns = ["lead_id", "created_at", "attributes"]
    readable = _Readable()
    leads_frame = readable.rows(_frame(leads, lead_columns), "created_at")
    return TrainingFrames(
        open_leads=readable.rows(_frame(open_leads, lead_columns), "created_at"),
        leads=leads_frame,
        snapshots=readable.of_leads(
            _frame(snapshots, ["lead_id", "scored_at", "features"]), "scored_at", leads_frame
        ),
        outcomes=readable.of_leads(
            _frame(outcomes, ["lead_id", "event_id", "outcome", "occurred_at", "crm_sequence"]),
            "occurred_at",
            leads_frame,
        ),
        skipped=readable.reported("training"),
    )


@dataclass(frozen=True)
class ReportFrames:
    """Every lead with all its events and snapshots: what the marketer reports read."""

    leads: pd.DataFrame  # lead_id, created_at, source, lead_type, attributes
    events: pd.DataFrame  # lead_id, event_id, outcome, occurred_at, amount, crm_sequence
    snapshots: pd.DataFrame  # lead_id, scored_at, features
    #: Stored rows left out because a time of theirs is unreadable (see `READABLE_TIMES`).
    skipped: int = 0


def report_frames(session: Session) -> ReportFrames:
    """The whole store but PII hashes (reports never read personal data, not even hashed)."""
    leads = session.execute(
        select(Lead.lead_id, Lead.created_at, Lead.source, Lead.lead_type, Lead.attributes)
    ).all()
    events = session.execute(
        select(
            OutcomeEvent.lead_id,
            OutcomeEvent.event_id,
            OutcomeEvent.outcome,
            OutcomeEvent.occurred_at,
            OutcomeEvent.amount,
            OutcomeEvent.crm_sequence,
        )
    ).all()
    snapshots = session.execute(
        select(ScoreSnapshot.lead_id, ScoreSnapshot.scored_at, ScoreSnapshot.features)
    ).all()
    readable = _Readable()
    leads_frame = readable.rows(
        _frame(leads, ["lead_id", "created_at", "source", "lead_type", "attributes"]), "created_at"
    )
    return ReportFrames(
        leads=leads_frame,
        events=readable.of_leads(
            _frame(
                events,
                ["lead_id", "event_id", "outcome", "occurred_at", "amount", "crm_sequence"],
            ),
            "occurred_at",
            leads_frame,
        ),
        snapshots=readable.of_leads(
            _frame(snapshots, ["lead_id", "scored_at", "features"]), "scored_at", leads_frame
        ),
        skipped=readable.reported("the reports"),
    )


#: Times the readers take: from the earliest the API accepts to a bound every later
#: computation can hold. A row outside them (stored before the API checked times, or written
#: by hand) is skipped and counted, never fatal: one bad row must not stop training or reports.
READABLE_TIMES = (EARLIEST_TIME, datetime(2200, 1, 1, tzinfo=UTC))


class _Readable:
    """Filters frames read from the store to readable times, counting what it leaves out."""

    def __init__(self) -> None:
        self.skipped = 0

    def rows(self, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        earliest, latest = READABLE_TIMES
        times = frame[column]
        if pd.api.types.is_datetime64_any_dtype(times):
            keep = (times >= earliest) & (times < latest)
        else:  # pandas keeps times it cannot hold (the year 3000) as Python objects
            keep = times.map(lambda t: t is not None and earliest <= t < latest).astype(bool)
        self.skipped += int((~keep).sum())
        return frame[keep].reset_index(drop=True)

    def of_leads(self, frame: pd.DataFrame, column: str, leads: pd.DataFrame) -> pd.DataFrame:
        """Readable rows of leads that were read (a skipped lead takes its rows with it)."""
        known = frame["lead_id"].isin(leads["lead_id"])
        self.skipped += int((~known).sum())
        return self.rows(frame[known], column)

    def reported(self, reader: str) -> int:
        if self.skipped:
            earliest, latest = READABLE_TIMES
            log.warning(
                "%s skipped %d stored rows dated outside %s to %s (or belonging to such a lead)",
                reader,
                self.skipped,
                f"{earliest:%Y-%m-%d}",
                f"{latest:%Y-%m-%d}",
            )
        return self.skipped


def _frame(rows: Iterable[Any], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _merged_per_key(
    rows: Iterable[Mapping[str, Any]], key: str, refreshed: Iterable[str]
) -> list[dict[str, Any]]:
    """One row per key, as upserting the rows one after another would leave it: the first
    row's values, with the `refreshed` columns of the last (a batch may repeat a lead)."""
    columns = list(refreshed)
    merged: dict[Any, dict[str, Any]] = {}
    for row in rows:
        first = merged.get(row[key])
        merged[row[key]] = dict(row) if first is None else first | {c: row.get(c) for c in columns}
    return list(merged.values())
