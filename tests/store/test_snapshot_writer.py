"""The snapshot writer: every scored lead stored once, whether written in the request or queued;
a full queue makes requests wait, never drops; a refused row loses only its own request's scores
(SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from store import erasure
from store.snapshot_writer import ScoredBatch, ScoredLead, SnapshotWriter, StoreBusyError
from store.tables import Lead, ScoreSnapshot
from tests.support import NOW, PII_KEY


def batch(*lead_ids: str, grade: str = "B", reasons: bool = True) -> ScoredBatch:
    """Leads as the scoring route hands them over (only the id and the time field set)."""
    leads = [
        ScoredLead(
            lead={"lead_id": lead_id, "created_at": NOW - timedelta(days=1)},
            probability=0.4,
            score=40,
            grade=grade,
            reasons=[{"field": "source", "value": "webinar", "impact": 12.0}] if reasons else None,
        )
        for lead_id in lead_ids
    ]
    return ScoredBatch(leads=leads, model_version="7", scored_at=NOW)


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        leads = session.scalar(select(func.count()).select_from(Lead))
        snapshots = session.scalar(select(func.count()).select_from(ScoreSnapshot))
    return leads or 0, snapshots or 0


def writer(sessions: sessionmaker[Session], schema: LeadSchema, **options: Any) -> SnapshotWriter:
    return SnapshotWriter(sessions, schema, PII_KEY, **({"capacity": 100} | options))


def test_without_a_queue_the_batch_is_stored_before_submit_returns(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    direct = writer(database_url, demo_schema, capacity=0)
    direct.submit(batch("a", "b"))
    assert counts(sessions) == (2, 2)
    direct.close()


def test_queued_scores_from_many_threads_are_all_stored_once_closed(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    queued = writer(database_url, demo_schema, capacity=50, linger_seconds=0.01)

    def score(thread: int) -> None:
        for n in range(40):
            queued.submit(batch(f"t{thread}-{n}-a", f"t{thread}-{n}-b"))

    threads = [threading.Thread(target=score, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queued.close()
    assert counts(sessions) == (320, 320)
    assert queued.lost == 0 and queued.queued == 0


def test_flush_makes_what_was_submitted_readable(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """A long linger would keep the batch queued for seconds; flush waits for it, no longer."""
    queued = writer(database_url, demo_schema, linger_seconds=0.3)
    queued.submit(batch("a"))
    assert counts(sessions) == (0, 0)  # still queued
    assert queued.flush(timeout=10)
    assert counts(sessions) == (1, 1)
    queued.close()


def test_a_score_without_reasons_is_stored_without_them(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    direct = writer(database_url, demo_schema, capacity=0)
    direct.submit(batch("alone", reasons=False))
    direct.close()
    with sessions() as session:
        assert session.scalars(select(ScoreSnapshot.reasons)).one() is None


def test_an_erased_lead_is_not_stored_again(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    queued = writer(database_url, demo_schema)
    queued.submit(batch("gone"))
    queued.flush()
    with sessions.begin() as session:
        erasure.erase_lead(session, "gone", PII_KEY, NOW)
    queued.submit(batch("gone", "kept"))
    queued.close()
    with sessions() as session:
        assert list(session.scalars(select(ScoreSnapshot.lead_id))) == ["kept"]


def test_a_refused_batch_loses_only_its_own_scores(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """One request's row the store refuses (a grade too long for its column on PostgreSQL, a
    NULL where none may be on both) does not take the others of its transaction with it."""
    queued = writer(database_url, demo_schema, linger_seconds=0.2)
    bad = ScoredBatch(leads=batch("bad").leads, model_version=None, scored_at=NOW)  # type: ignore[arg-type]
    queued.submit(batch("first"))
    queued.submit(bad)
    queued.submit(batch("last"))
    queued.close()
    with sessions() as session:
        assert sorted(session.scalars(select(ScoreSnapshot.lead_id))) == ["first", "last"]
    assert queued.lost == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_full_queue_makes_the_request_wait_then_refuses_it_and_loses_nothing(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """While another connection holds SQLite's write lock (an import), the writer cannot store:
    the queue fills, the next request is refused after `wait_seconds`, and once the lock is
    released every queued score is stored."""
    queued = writer(database_url, demo_schema, capacity=3, linger_seconds=0, wait_seconds=0.3)
    with sessions.kw["bind"].connect() as blocker:
        blocker.execute(text("BEGIN IMMEDIATE"))
        queued.submit(batch("a", "b"))
        queued.submit(batch("c"))
        with pytest.raises(StoreBusyError, match="waiting for the store"):
            queued.submit(batch("d"))
        blocker.execute(text("ROLLBACK"))
    queued.close()
    assert counts(sessions) == (3, 3)
    assert queued.lost == 0


def test_if_the_writer_process_dies_the_service_stores_its_scores_itself(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """Killed while it held a batch (linger), the writer loses nothing: the service writes
    what was not confirmed, and each later batch before `submit` returns."""
    queued = writer(database_url, demo_schema, linger_seconds=2.0)
    queued.submit(batch("held"))
    time.sleep(0.5)  # in the writer process's hands, not yet stored
    assert queued._process is not None
    queued._process.kill()
    assert queued.flush(timeout=30)
    assert counts(sessions) == (1, 1)
    queued.submit(batch("after"))
    assert counts(sessions) == (2, 2)
    queued.close()


def test_if_the_writer_dies_holding_a_batch_the_store_refuses_the_others_are_stored(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """The service's own write of what the writer held splits off the refused batch, as the
    writer would: the good batch is stored, the bad one counted lost, and reads go on."""
    queued = writer(database_url, demo_schema, linger_seconds=2.0)
    queued.submit(batch("good"))
    queued.submit(ScoredBatch(leads=batch("bad").leads, model_version=None, scored_at=NOW))  # type: ignore[arg-type]
    time.sleep(0.5)
    assert queued._process is not None
    queued._process.kill()
    assert queued.flush(timeout=30)
    with sessions() as session:
        assert list(session.scalars(select(ScoreSnapshot.lead_id))) == ["good"]
    assert queued.lost == 1 and queued.queued == 0
    queued.close()
