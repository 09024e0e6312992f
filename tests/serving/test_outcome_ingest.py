"""Ingest tells the truth: one row per event, a replay answered alike, a reused `event_id`
refused, and a final state that does not depend on arrival order (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from serving.services import (
    ConflictingEventsError,
    InvalidOutcomesError,
    RecordedOutcomes,
    erase_lead,
    record_outcomes,
)
from store import repository
from store.outcomes import latest_closing_outcomes
from store.tables import Lead, OutcomeEvent
from tests.support import PII_KEY

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
NOW = T0 + timedelta(days=60)


def store_leads(sessions: sessionmaker[Session], *lead_ids: str) -> None:
    rows = [
        {
            "lead_id": lead_id,
            "created_at": T0,
            "source": None,
            "lead_type": None,
            "attributes": {},
            "pii_hashes": {},
            "updated_at": T0,
        }
        for lead_id in lead_ids
    ]
    with sessions.begin() as session:
        repository.upsert_leads(session, rows)


def event(event_id: str, lead_id: str = "a", **changes: Any) -> dict[str, Any]:
    """An outcome as the API hands it to the service."""
    return {
        "event_id": event_id,
        "lead_id": lead_id,
        "outcome": "won",
        "occurred_at": T0 + timedelta(days=10),
        "amount": 1200.5,
        "reason": None,
        "sequence": None,
    } | changes


def record(
    sessions: sessionmaker[Session], events: list[dict[str, Any]], now: datetime
) -> RecordedOutcomes:
    return record_outcomes(sessions, events, PII_KEY, now)


def stored_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(OutcomeEvent)) or 0


def test_a_replay_gets_the_same_answer_and_stores_nothing_more(
    sessions: sessionmaker[Session],
) -> None:
    store_leads(sessions, "a", "b")
    batch = [event("e1"), event("e2", "b", outcome="lost", amount=None), event("e1")]
    first = record(sessions, batch, NOW)
    again = record(sessions, batch, NOW + timedelta(hours=1))
    assert first == again == RecordedOutcomes(accepted=2, duplicates=1)
    assert stored_count(sessions) == 2


def test_the_same_instant_in_another_offset_is_the_same_event(
    sessions: sessionmaker[Session],
) -> None:
    store_leads(sessions, "a")
    record(sessions, [event("e1")], NOW)
    tokyo = (T0 + timedelta(days=10)).astimezone(timezone(timedelta(hours=9)))
    assert record(sessions, [event("e1", occurred_at=tokyo)], NOW).accepted == 1


@pytest.mark.parametrize(
    "change",
    [
        {"outcome": "lost"},
        {"amount": 1200.51},
        {"occurred_at": T0 + timedelta(days=11)},
        {"reason": "price"},
        {"sequence": 7},
    ],
    ids=["outcome", "amount", "occurred_at", "reason", "sequence"],
)
def test_a_reused_event_id_with_another_payload_is_refused_and_nothing_of_the_batch_kept(
    sessions: sessionmaker[Session], change: dict[str, Any]
) -> None:
    store_leads(sessions, "a", "b")
    record(sessions, [event("e1")], NOW)
    with pytest.raises(ConflictingEventsError) as caught:
        record(sessions, [event("new", "b"), event("e1", **change)], NOW)
    assert caught.value.event_ids == ["e1"]
    assert stored_count(sessions) == 1
    with sessions() as session:
        assert repository.stored_events(session, ["e1"])["e1"]["outcome"] == "won"


def test_a_batch_that_contradicts_itself_is_refused(sessions: sessionmaker[Session]) -> None:
    store_leads(sessions, "a")
    with pytest.raises(ConflictingEventsError):
        record(sessions, [event("e1"), event("e1", outcome="lost")], NOW)
    assert stored_count(sessions) == 0


def test_unknown_leads_and_outcomes_before_the_lead_are_named(
    sessions: sessionmaker[Session],
) -> None:
    store_leads(sessions, "a")
    batch = [
        event("e1", "nobody"),
        event("e2", occurred_at=T0 - timedelta(days=3)),
        event("e3", occurred_at=T0 - timedelta(hours=2)),  # within clock skew: fine
    ]
    with pytest.raises(InvalidOutcomesError) as caught:
        record(sessions, batch, NOW)
    assert [(i, field) for i, field, _ in caught.value.problems] == [
        (0, "lead_id"),
        (1, "occurred_at"),
    ]
    assert stored_count(sessions) == 0


@contextmanager
def erased_midway(sessions: sessionmaker[Session], lead_id: str) -> Iterator[None]:
    """Erase `lead_id`, through a connection of its own, once the service has read which leads
    the store holds and before it adds their outcomes: an erasure racing an ingest, made
    certain by timing it on the service's query of the leads' creation times."""
    engine = sessions.kw["bind"]
    erased: list[str] = []

    def erase(*args: Any) -> None:
        statement = args[2]
        if not erased and "leads.created_at" in statement:
            erased.append(lead_id)
            assert erase_lead(sessions, lead_id, PII_KEY, NOW) is not None

    sqlalchemy_event.listen(engine, "after_cursor_execute", erase)
    try:
        yield
    finally:
        sqlalchemy_event.remove(engine, "after_cursor_execute", erase)
    assert erased == [lead_id], "the service no longer reads the leads' creation times"


def test_a_lead_erased_while_its_outcomes_are_stored_is_named_like_any_erased_lead(
    sessions: sessionmaker[Session],
) -> None:
    """A 422 naming the lead, not a 500: the store's own check of the leads finds it gone."""
    store_leads(sessions, "a", "b")
    with erased_midway(sessions, "b"), pytest.raises(InvalidOutcomesError) as caught:
        record(sessions, [event("e1"), event("e2", "b")], NOW)
    assert caught.value.problems == [
        (1, "lead_id", "the lead was erased on request: nothing of it is stored")
    ]
    assert stored_count(sessions) == 0


def test_a_reason_longer_than_the_column_once_masked_is_cut_to_it(
    sessions: sessionmaker[Session],
) -> None:
    """`a@b.co` is masked as `[email]`, a character longer: a reason the API takes at 497
    characters grows past the column's 500 (PostgreSQL refused it, a 500)."""
    store_leads(sessions, "a")
    reason = "a@b.co " * 71  # 497 characters; 568 masked
    record(sessions, [event("e1", reason=reason)], NOW)
    again = record(sessions, [event("e1", reason=reason)], NOW)  # a replay: the same event
    assert again == RecordedOutcomes(accepted=1, duplicates=0)
    with sessions() as session:
        stored = repository.stored_events(session, ["e1"])["e1"]["reason"]
    assert len(stored) == 500 and stored.startswith("[email] [email]") and "@" not in stored


def tied_history(lead_id: str) -> list[dict[str, Any]]:
    """Outcomes of one lead at one moment: with sequences, and without."""
    at = T0 + timedelta(days=5)
    return [
        event(f"{lead_id}-1", lead_id, outcome="won", occurred_at=at, sequence=2),
        event(f"{lead_id}-2", lead_id, outcome="lost", occurred_at=at, sequence=9, amount=None),
        event(f"{lead_id}-3", lead_id, outcome="disqualified", occurred_at=at, amount=None),
    ]


def test_ties_end_in_the_same_state_whatever_the_arrival_order(
    sessions: sessionmaker[Session],
) -> None:
    """The lead the CRM reads back and the outcome training learns agree, for both orders."""
    store_leads(sessions, "forward", "backward", "unnumbered")
    for one in tied_history("forward"):
        record(sessions, [one], NOW)
    for one in reversed(tied_history("backward")):
        record(sessions, [one], NOW)
    unnumbered = [e | {"sequence": None} for e in tied_history("unnumbered")]
    for one in unnumbered[::-1]:
        record(sessions, [one], NOW)
    with sessions() as session:
        read_back = {
            lead: repository.latest_outcome(session, lead).outcome  # type: ignore[union-attr]
            for lead in ("forward", "backward", "unnumbered")
        }
        frames = repository.training_frames(session)
    trained = latest_closing_outcomes(frames.outcomes).set_index("lead_id")["outcome"].to_dict()
    assert read_back == trained == {"forward": "lost", "backward": "lost", "unnumbered": "won"}


def test_the_same_new_events_posted_at_once_in_opposite_orders_are_all_stored(
    sessions: sessionmaker[Session],
) -> None:
    """A CRM's retry racing its original, re-sorted: both must be answered, never a deadlock.

    Rows are written in key order; in arrival order, PostgreSQL ended a few such pairs in a
    deadlock (make reliability, figure 4), so each round here gives it the chance to.
    """
    rounds, size = 30, 40
    lead_ids = [f"lead-{n:02d}" for n in range(size)]
    store_leads(sessions, *lead_ids)
    answers: list[RecordedOutcomes] = []
    for round_ in range(rounds):
        batch = [event(f"r{round_}-{lead_id}", lead_id) for lead_id in lead_ids]
        start = threading.Barrier(2)

        def post(events: list[dict[str, Any]], start: threading.Barrier = start) -> None:
            start.wait()
            answers.append(record(sessions, events, NOW))

        with ThreadPoolExecutor(max_workers=2) as pool:
            posted = [pool.submit(post, batch), pool.submit(post, batch[::-1])]
            for future in posted:
                future.result()  # a deadlock would raise here
    # Both are answered alike: a replay gets the answer its original got.
    assert answers == [RecordedOutcomes(accepted=size, duplicates=0)] * (2 * rounds)
    assert stored_count(sessions) == rounds * size


def test_the_same_new_leads_written_at_once_in_opposite_orders_are_all_stored(
    sessions: sessionmaker[Session],
) -> None:
    """Two scoring requests carrying the same new leads in opposite orders (see above)."""
    for round_ in range(30):
        lead_ids = [f"r{round_}-{n:02d}" for n in range(40)]
        start = threading.Barrier(2)

        def write(ids: list[str], start: threading.Barrier = start) -> None:
            start.wait()
            store_leads(sessions, *ids)

        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(write, lead_ids), pool.submit(write, lead_ids[::-1])]:
                future.result()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 30 * 40
