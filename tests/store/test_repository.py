"""The repository acts the same on SQLite and PostgreSQL: idempotent, aware UTC, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from store.repository import (
    UnknownLeadsError,
    add_outcomes,
    add_snapshots,
    count_leads,
    created_times,
    get_lead,
    latest_outcome,
    latest_snapshot,
    report_frames,
    snapshots_before,
    training_frames,
    upsert_leads,
)
from store.tables import Lead, OutcomeEvent, ScoreSnapshot
from training.dataset import build_training_set

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
#: An aware time outside UTC (with microseconds): the store must give back the same instant.
BERLIN_SUMMER = timezone(timedelta(hours=2))
NON_UTC = datetime(2026, 6, 15, 17, 45, 12, 123456, tzinfo=BERLIN_SUMMER)


def lead(lead_id: str, *, at: datetime = T0, **attributes: Any) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "created_at": at,
        "source": attributes.get("source"),
        "lead_type": attributes.get("lead_type"),
        "attributes": attributes,
        "pii_hashes": {"email": f"hash-of-{lead_id}"},
        "updated_at": at,
    }


def outcome(
    event_id: str, lead_id: str, kind: str = "lost", *, at: datetime = T0
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "lead_id": lead_id,
        "outcome": kind,
        "occurred_at": at,
        "amount": 1200.5 if kind == "won" else None,
        "reason": None if kind == "won" else "price",
        "received_at": at,
    }


def snapshot(lead_id: str, at: datetime, probability: float) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "scored_at": at,
        "features": {"page_views": probability * 10},
        "probability": probability,
        "score": round(probability * 100),
        "grade": "B",
        "reasons": [],
        "model_version": "v1",
    }


def outcome_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OutcomeEvent)) or 0


def test_upsert_inserts_then_updates_but_keeps_created_at(
    sessions: sessionmaker[Session],
) -> None:
    """A lead posted again (e.g. re-scored) gets new values; its creation time is history."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("a", source="webinar", page_views=1), lead("b")])
    later = T0 + timedelta(days=3)
    updated = lead("a", at=later, source="referral", page_views=7) | {
        "pii_hashes": {"email": "new-hash"}
    }
    with sessions.begin() as session:
        upsert_leads(session, [updated])
    with sessions() as session:
        assert count_leads(session) == 2
        a = get_lead(session, "a")
        assert a is not None
        assert a.created_at == T0
        assert a.updated_at == later
        assert a.source == "referral"
        assert a.attributes == {"source": "referral", "page_views": 7}
        assert a.pii_hashes == {"email": "new-hash"}


def test_upsert_of_a_lead_repeated_in_one_batch_keeps_the_last(
    sessions: sessionmaker[Session],
) -> None:
    """A batch may carry the same lead twice; the later values are the newer ones."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("a", page_views=1), lead("a", page_views=2)])
    with sessions() as session:
        assert count_leads(session) == 1
        a = get_lead(session, "a")
        assert a is not None and a.attributes == {"page_views": 2}


def test_outcomes_are_stored_once_per_event_id(sessions: sessionmaker[Session]) -> None:
    """CRMs resend webhooks; a repeated event must neither be counted nor stored twice."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("a"), lead("b")])
    with sessions.begin() as session:
        first = add_outcomes(
            session, [outcome("e1", "a"), outcome("e2", "b", "won"), outcome("e1", "a")]
        )
    with sessions.begin() as session:
        second = add_outcomes(session, [outcome("e2", "b", "won"), outcome("e3", "b")])
    assert (first.accepted, first.duplicates) == (2, 1)
    assert (second.accepted, second.duplicates) == (1, 1)
    with sessions() as session:
        stored = session.scalars(select(OutcomeEvent.event_id)).all()
    assert sorted(stored) == ["e1", "e2", "e3"]


def test_outcomes_for_unknown_leads_are_refused_and_nothing_is_stored(
    sessions: sessionmaker[Session],
) -> None:
    """A typo in a lead id must be reported, not half-applied."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("known")])
    batch = [outcome("e1", "known"), outcome("e2", "ghost-2"), outcome("e3", "ghost-1")]
    with sessions() as session:
        with pytest.raises(UnknownLeadsError) as caught:
            add_outcomes(session, batch)
        assert sorted(caught.value.lead_ids) == ["ghost-1", "ghost-2"]
        assert "ghost-1" in str(caught.value) and "ghost-2" in str(caught.value)
        assert "known" not in caught.value.lead_ids
        assert outcome_count(session) == 0


def test_times_come_back_aware_utc_and_equal_to_what_was_written(
    sessions: sessionmaker[Session],
) -> None:
    """SQLite has no time zones; the store must still return the instant that was written."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("a", at=NON_UTC)])
        add_outcomes(session, [outcome("e1", "a", at=NON_UTC)])
        add_snapshots(session, [snapshot("a", NON_UTC, 0.3)])
    with sessions() as session:  # a new session: values read from the database, not cached
        a = get_lead(session, "a")
        event = latest_outcome(session, "a")
        scored = latest_snapshot(session, "a")
        assert a is not None and event is not None and scored is not None
        for moment in (a.created_at, a.updated_at, event.occurred_at, scored.scored_at):
            assert moment == NON_UTC
            assert moment.utcoffset() == timedelta(0)
        assert a.created_at.replace(tzinfo=None) == datetime(2026, 6, 15, 15, 45, 12, 123456)


def test_naive_times_are_refused(sessions: sessionmaker[Session]) -> None:
    """A naive time is ambiguous; guessing its zone would shift leads by hours."""
    with sessions() as session, pytest.raises(StatementError, match="naive datetime"):
        upsert_leads(session, [lead("a", at=datetime(2026, 3, 1, 9, 30))])


def test_latest_snapshot_and_outcome_pick_the_newest(sessions: sessionmaker[Session]) -> None:
    """The newest is by time, not by insertion order: late webhooks arrive out of order."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("a"), lead("b")])
        add_snapshots(
            session,
            [
                snapshot("a", T0 + timedelta(hours=5), 0.7),
                snapshot("a", T0 + timedelta(hours=9), 0.9),
                snapshot("a", T0 + timedelta(hours=1), 0.2),
                snapshot("b", T0 + timedelta(days=9), 0.1),
            ],
        )
        add_outcomes(
            session,
            [
                outcome("late", "a", "won", at=T0 + timedelta(days=20)),
                outcome("early", "a", "lost", at=T0 + timedelta(days=2)),
                outcome("other", "b", "lost", at=T0 + timedelta(days=40)),
            ],
        )
    with sessions() as session:
        newest_snapshot = latest_snapshot(session, "a")
        newest_outcome = latest_outcome(session, "a")
        assert newest_snapshot is not None and newest_outcome is not None
        assert (newest_snapshot.scored_at, newest_snapshot.probability) == (
            T0 + timedelta(hours=9),
            0.9,
        )
        assert newest_outcome.event_id == "late"
        assert newest_outcome.amount == 1200.5
        assert latest_snapshot(session, "nobody") is None
        assert latest_outcome(session, "nobody") is None


def test_latest_snapshot_breaks_a_tie_by_the_last_written(
    sessions: sessionmaker[Session],
) -> None:
    """Two scores at the same instant (a retried request): the later write is the answer."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("a")])
        add_snapshots(session, [snapshot("a", T0, 0.2)])
        add_snapshots(session, [snapshot("a", T0, 0.8)])
    with sessions() as session:
        newest = latest_snapshot(session, "a")
        assert newest is not None and newest.probability == 0.8


def test_add_snapshots_returns_the_new_ids_in_the_rows_order_when_asked(
    sessions: sessionmaker[Session],
) -> None:
    rows = [snapshot(lead_id, T0, 0.5) for lead_id in ("c", "a", "b", "a")]
    with sessions.begin() as session:
        upsert_leads(session, [lead("a"), lead("b"), lead("c")])
        assert add_snapshots(session, rows[:1]) == []  # not asked: not read
        ids = add_snapshots(session, rows[1:], return_ids=True)
        assert add_snapshots(session, [], return_ids=True) == []
    with sessions() as session:
        stored = dict(session.execute(select(ScoreSnapshot.id, ScoreSnapshot.lead_id)).all())
    assert len(set(ids)) == 3 and [stored[i] for i in ids] == ["a", "b", "a"]


def test_database_refuses_an_unknown_outcome(sessions: sessionmaker[Session]) -> None:
    """The check constraint guards the labels even against writers that bypass the API."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("a")])
    with sessions() as session:
        session.execute(insert(OutcomeEvent).values(outcome("ok", "a", "disqualified")))
        with pytest.raises(IntegrityError):
            session.execute(insert(OutcomeEvent).values(outcome("bad", "a", "pending")))


def test_database_refuses_an_outcome_without_its_lead(sessions: sessionmaker[Session]) -> None:
    """The foreign key holds on SQLite too (it is off there unless switched on)."""
    with sessions() as session, pytest.raises(IntegrityError):
        session.execute(insert(OutcomeEvent).values(outcome("orphan", "nobody")))


def test_training_frames_hold_only_closed_leads_with_their_snapshots(
    sessions: sessionmaker[Session],
) -> None:
    """Training learns from closed leads only, joined to what was scored for them."""
    with sessions.begin() as session:
        upsert_leads(
            session,
            [lead("won", page_views=9), lead("lost", page_views=1), lead("open", page_views=4)],
        )
        add_snapshots(
            session,
            [
                snapshot("won", T0 + timedelta(hours=1), 0.4),
                snapshot("won", T0 + timedelta(hours=2), 0.6),
                snapshot("open", T0 + timedelta(hours=1), 0.5),
            ],
        )
        add_outcomes(
            session,
            [
                outcome("w", "won", "won", at=T0 + timedelta(days=30)),
                outcome("l", "lost", "lost", at=T0 + timedelta(days=12)),
            ],
        )
    with sessions() as session:
        frames = training_frames(session)
    assert sorted(frames.leads["lead_id"]) == ["lost", "won"]
    by_id = frames.leads.set_index("lead_id")
    assert by_id.loc["won", "attributes"] == {"page_views": 9}
    assert by_id.loc["won", "created_at"] == T0
    assert sorted(frames.snapshots["lead_id"]) == ["won", "won"]
    assert sorted(frames.snapshots["scored_at"]) == [
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
    ]
    outcomes = frames.outcomes.set_index("event_id")
    assert outcomes.loc["w", ["lead_id", "outcome"]].tolist() == ["won", "won"]
    assert outcomes.loc["l", ["lead_id", "outcome"]].tolist() == ["lost", "lost"]
    assert outcomes.loc["w", "occurred_at"] == T0 + timedelta(days=30)


def test_training_frames_of_an_empty_store_have_their_columns(
    sessions: sessionmaker[Session],
) -> None:
    """A first training run on a fresh store must get empty frames, not a KeyError."""
    with sessions() as session:
        frames = training_frames(session)
    assert list(frames.leads.columns) == ["lead_id", "created_at", "attributes"]
    assert list(frames.snapshots.columns) == ["lead_id", "scored_at", "features"]
    assert "outcome" in frames.outcomes.columns
    assert len(frames.leads) == len(frames.snapshots) == len(frames.outcomes) == 0


def test_deleting_a_lead_removes_its_snapshots_and_outcomes(
    sessions: sessionmaker[Session],
) -> None:
    """Erasure requests (GDPR) delete the lead; nothing of it may linger in other tables."""
    with sessions.begin() as session:
        upsert_leads(session, [lead("gone"), lead("stays")])
        add_snapshots(session, [snapshot("gone", T0, 0.5), snapshot("stays", T0, 0.5)])
        add_outcomes(session, [outcome("g", "gone"), outcome("s", "stays")])
    with sessions.begin() as session:
        session.execute(Lead.__table__.delete().where(Lead.lead_id == "gone"))
    with sessions() as session:
        assert session.scalars(select(ScoreSnapshot.lead_id)).all() == ["stays"]
        assert session.scalars(select(OutcomeEvent.lead_id)).all() == ["stays"]


def test_rows_with_unreadable_times_are_skipped_and_counted_not_fatal(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    """A lead dated in the year 3000 (stored before the API checked times) must not stop
    training or the reports: it is left out with everything of it, and counted."""
    far = datetime(3000, 1, 1, tzinfo=UTC)
    with sessions.begin() as session:
        upsert_leads(session, [lead("future", at=far), lead("fine"), lead("open")])
        add_snapshots(session, [snapshot("future", T0, 0.5), snapshot("fine", T0, 0.5)])
        add_outcomes(
            session,
            [outcome("f", "future", at=far), outcome("ok", "fine", at=T0 + timedelta(days=3))],
        )
    with sessions() as session:
        frames = training_frames(session)
        report = report_frames(session)
    assert frames.leads["lead_id"].tolist() == ["fine"]
    assert frames.outcomes["lead_id"].tolist() == frames.snapshots["lead_id"].tolist() == ["fine"]
    assert frames.skipped == 3  # the lead, its snapshot, its outcome
    assert len(build_training_set(frames, demo_schema)) == 1
    assert sorted(report.leads["lead_id"]) == ["fine", "open"]
    assert report.events["lead_id"].tolist() == ["fine"]
    assert report.skipped == 3


def test_created_times_name_the_stored_leads_only(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        upsert_leads(session, [lead("a"), lead("b", at=NON_UTC)])
    with sessions() as session:
        assert created_times(session, ["a", "b", "nobody", "a"]) == {"a": T0, "b": NON_UTC}


def test_history_pages_by_time_then_by_id(sessions: sessionmaker[Session]) -> None:
    """Newest first; scores of one time (one request scoring a lead twice) in the order they
    were written, and a page that ends among them continues with the rest."""
    tie = T0 + timedelta(hours=5)
    with sessions.begin() as session:
        upsert_leads(session, [lead("a"), lead("b")])
        add_snapshots(
            session,
            [
                snapshot("a", T0 + timedelta(hours=1), 0.1),
                snapshot("a", tie, 0.2),
                snapshot("a", tie, 0.3),
                snapshot("a", T0 + timedelta(hours=9), 0.4),
                snapshot("b", T0 + timedelta(hours=7), 0.9),
            ],
        )
    with sessions() as session:
        pages, cursor = [], (None, None)
        while True:
            page = snapshots_before(session, "a", *cursor, limit=2)
            pages.append([s.probability for s in page])
            if len(page) < 2:
                break
            cursor = (page[-1].scored_at, page[-1].id)
        assert pages == [[0.4, 0.3], [0.2, 0.1], []]
        earlier = snapshots_before(session, "a", tie, None, limit=10)
        assert [s.probability for s in earlier] == [0.1]
