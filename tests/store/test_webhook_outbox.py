"""The webhook outbox: which score changes owe the CRM a webhook (pure rules), the deliveries
written in the transaction that stores the scores, and claims that never give one delivery to
two dispatchers at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from store import erasure
from store.db import make_engine, migrate, session_factory
from store.snapshot_writer import ScoredBatch, ScoredLead, SnapshotWriter, write_batches
from store.tables import ScoreSnapshot, WebhookDelivery
from store.webhook_outbox import (
    DeliveryStatus,
    StoredScore,
    WebhookEvent,
    WebhookRules,
    claim_due,
    deliveries_page,
    fired_events,
    latest_scores,
    owed_deliveries,
    record_attempt,
    still_held,
)
from tests.store.test_migrations import downgrade, engine_of, schema_differences
from tests.support import NOW, PII_KEY, open_store

ALL = WebhookRules(frozenset(WebhookEvent), (50, 70))
GRADES = WebhookRules(frozenset({WebhookEvent.GRADE_CHANGED}))
CROSSINGS = WebhookRules(frozenset({WebhookEvent.SCORE_CROSSED}), (50, 70))


def stored(score: int, grade: str, snapshot_id: int = 1, at: datetime = NOW) -> StoredScore:
    return StoredScore(snapshot_id, score, grade, at, "7")


# --- the rules (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ((40, "C"), (40, "C"), []),
        ((40, "C"), (45, "C"), []),
        ((40, "C"), (45, "B"), [("grade_changed", {"direction": "up"})]),
        ((80, "A"), (72, "B"), [("grade_changed", {"direction": "down"})]),
        ((69, "B"), (70, "B"), [("score_crossed", {"direction": "up", "thresholds": [70]})]),
        ((70, "B"), (69, "B"), [("score_crossed", {"direction": "down", "thresholds": [70]})]),
        ((70, "B"), (71, "B"), []),  # at or above 70 before and after: not a crossing
        ((49, "B"), (50, "B"), [("score_crossed", {"direction": "up", "thresholds": [50]})]),
        (
            (40, "C"),
            (90, "A"),
            [
                ("grade_changed", {"direction": "up"}),
                ("score_crossed", {"direction": "up", "thresholds": [50, 70]}),
            ],
        ),
    ],
)
def test_the_rules_fire_on_a_grade_change_and_on_each_threshold_crossed(
    old: tuple[int, str], new: tuple[int, str], expected: list[tuple[str, dict[str, Any]]]
) -> None:
    fired = fired_events(ALL, stored(*old), stored(*new, snapshot_id=2))
    assert [(f.event.value, f.details) for f in fired] == expected


def test_only_the_configured_events_fire() -> None:
    old, new = stored(40, "C"), stored(90, "A", snapshot_id=2)
    assert [f.event for f in fired_events(GRADES, old, new)] == [WebhookEvent.GRADE_CHANGED]
    assert [f.event for f in fired_events(CROSSINGS, old, new)] == [WebhookEvent.SCORE_CROSSED]
    no_thresholds = WebhookRules(frozenset({WebhookEvent.SCORE_CROSSED}))
    assert fired_events(no_thresholds, old, new) == []


def snapshot(
    snapshot_id: int, lead_id: str, score: int, grade: str, at: datetime = NOW
) -> dict[str, Any]:
    """A snapshot row as `write_batches` stores it (the fields the rules read)."""
    return {
        "id": snapshot_id,
        "lead_id": lead_id,
        "score": score,
        "grade": grade,
        "scored_at": at,
        "model_version": "8",
        "reasons": [{"field": "source", "value": "webinar", "impact": 12.3, "text": "A webinar"}],
    }


def test_a_first_score_owes_nothing_and_a_change_owes_its_payload() -> None:
    earlier = stored(40, "C", snapshot_id=3, at=NOW - timedelta(days=1))
    rows = owed_deliveries(
        GRADES, {"known": earlier}, [snapshot(10, "new", 90, "A"), snapshot(11, "known", 80, "A")]
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["event"], row["lead_id"], row["old_snapshot_id"], row["new_snapshot_id"]) == (
        "grade_changed",
        "known",
        3,
        11,
    )
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("pending", 0, NOW)
    assert row["payload"] == {
        "event": "grade_changed",
        "lead_id": "known",
        "old": {
            "score": 40,
            "grade": "C",
            "scored_at": (NOW - timedelta(days=1)).isoformat(),
            "model_version": "7",
        },
        "new": {"score": 80, "grade": "A", "scored_at": NOW.isoformat(), "model_version": "8"},
        "direction": "up",
        "reasons": [{"text": "A webinar", "points": 12.3}],
    }


def test_a_lead_scored_twice_in_one_batch_changes_from_its_first_score() -> None:
    rows = owed_deliveries(
        GRADES, {}, [snapshot(1, "twice", 40, "C"), snapshot(2, "twice", 90, "A")]
    )
    assert [(r["old_snapshot_id"], r["new_snapshot_id"]) for r in rows] == [(1, 2)]


def test_a_score_older_than_the_newest_stored_fires_nothing() -> None:
    """Another process stored a later score first: the late one is not the lead's score now,
    and the next one is compared with the newest."""
    newest = stored(90, "A", snapshot_id=5, at=NOW)
    late = snapshot(6, "lead", 30, "D", at=NOW - timedelta(seconds=1))
    after = snapshot(7, "lead", 30, "D", at=NOW + timedelta(seconds=1))
    rows = owed_deliveries(GRADES, {"lead": newest}, [late, after])
    assert [(r["old_snapshot_id"], r["new_snapshot_id"]) for r in rows] == [(5, 7)]


# --- written with the scores ----------------------------------------------------------------------


def batch(
    scores: dict[str, tuple[int, str]], at: datetime = NOW, reasons: bool = True
) -> ScoredBatch:
    """Leads as the scoring route hands them over, with the scores and grades given."""
    leads = [
        ScoredLead(
            lead={"lead_id": lead_id, "created_at": NOW - timedelta(days=1)},
            probability=score / 100,
            score=score,
            grade=grade,
            reasons=[{"field": "source", "value": "webinar", "impact": 9.5, "text": "A webinar"}]
            if reasons
            else None,
        )
        for lead_id, (score, grade) in scores.items()
    ]
    return ScoredBatch(leads=leads, model_version="7", scored_at=at)


def write(
    sessions: sessionmaker[Session],
    schema: LeadSchema,
    batches: list[ScoredBatch],
    rules: WebhookRules | None = ALL,
) -> None:
    with sessions.begin() as session:
        write_batches(session, schema, PII_KEY, batches, rules)


def deliveries(sessions: sessionmaker[Session]) -> list[WebhookDelivery]:
    with sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_change_is_written_with_the_score_that_fires_it(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    write(sessions, demo_schema, [batch({"a": (40, "C"), "b": (40, "C")})])
    assert deliveries(sessions) == []  # first scores
    write(sessions, demo_schema, [batch({"a": (40, "C"), "b": (75, "B")}, NOW + timedelta(1))])
    found = deliveries(sessions)
    assert [(d.event, d.lead_id) for d in found] == [
        ("grade_changed", "b"),
        ("score_crossed", "b"),
    ]
    with sessions() as session:
        snapshot_ids = list(
            session.scalars(
                select(ScoreSnapshot.id).where(ScoreSnapshot.lead_id == "b").order_by("id")
            )
        )
    for delivery in found:
        assert [delivery.old_snapshot_id, delivery.new_snapshot_id] == snapshot_ids
        assert delivery.status == "pending" and delivery.attempts == 0
        assert delivery.next_attempt_at == NOW + timedelta(1)
        assert delivery.payload["new"] == {
            "score": 75,
            "grade": "B",
            "scored_at": (NOW + timedelta(1)).isoformat(),
            "model_version": "7",
        }
        assert delivery.payload["reasons"] == [{"text": "A webinar", "points": 9.5}]
    assert found[1].payload["thresholds"] == [50, 70]


def test_without_rules_nothing_is_owed(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    write(sessions, demo_schema, [batch({"a": (40, "C")})], rules=None)
    write(sessions, demo_schema, [batch({"a": (90, "A")}, NOW + timedelta(1))], rules=None)
    assert deliveries(sessions) == []


def test_a_score_without_reasons_owes_a_payload_without_them(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    write(sessions, demo_schema, [batch({"a": (40, "C")})], rules=GRADES)
    later = batch({"a": (90, "A")}, NOW + timedelta(1), reasons=False)
    write(sessions, demo_schema, [later], rules=GRADES)
    assert [d.payload["reasons"] for d in deliveries(sessions)] == [[]]


def test_the_previous_scores_are_read_in_one_query_per_batch(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    """Not one per lead: 200 leads cost as many statements as 2."""
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = engine_of(sessions)

    def written(n: int, prefix: str) -> int:
        leads = {f"{prefix}-{i}": (40, "C") for i in range(n)}
        write(sessions, demo_schema, [batch(leads)])
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            changed = dict.fromkeys(leads, (90, "A"))
            write(sessions, demo_schema, [batch(changed, NOW + timedelta(1))])
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return sum("score_snapshots" in s and s.lstrip().startswith("SELECT") for s in statements)

    assert written(2, "few") == written(200, "many") == 1
    with sessions() as session:
        owed = session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert owed == 2 * (2 + 200)  # a grade change and a crossing each


@contextmanager
def without_cascades(database_url: str) -> Iterator[Session]:
    """A transaction in which the store's foreign keys do nothing, as on a SQLite connection
    opened without `PRAGMA foreign_keys=ON` (on PostgreSQL: a session applying rows as a
    replica, which runs no foreign-key triggers)."""
    engine = make_engine(database_url)  # its own: the pragma stays with the connection
    try:
        with session_factory(engine).begin() as session:
            if engine.dialect.name == "sqlite":
                # Before any write: SQLite ignores the pragma inside a transaction.
                session.execute(text("PRAGMA foreign_keys=OFF"))
                assert session.scalar(text("PRAGMA foreign_keys")) == 0
            else:
                session.execute(text("SET LOCAL session_replication_role = replica"))
            yield session
    finally:
        engine.dispose()


def test_an_erased_lead_takes_its_deliveries_with_it(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """Deleted by the erasure itself, not left to the foreign key's cascade."""
    write(sessions, demo_schema, [batch({"gone": (40, "C"), "kept": (40, "C")})])
    write(
        sessions, demo_schema, [batch({"gone": (90, "A"), "kept": (90, "A")}, NOW + timedelta(1))]
    )
    assert {d.lead_id for d in deliveries(sessions)} == {"gone", "kept"}
    with without_cascades(database_url) as session:
        erasure.erase_lead(session, "gone", PII_KEY, NOW)
    assert {d.lead_id for d in deliveries(sessions)} == {"kept"}


def test_a_delivery_id_is_never_given_again_after_an_erasure(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    """Receivers drop a repeated delivery id: the ids of erased deliveries stay used."""
    write(sessions, demo_schema, [batch({"first": (40, "C")})])
    write(sessions, demo_schema, [batch({"first": (90, "A")}, NOW + timedelta(1))])
    erased = {d.id for d in deliveries(sessions)}
    with sessions.begin() as session:
        erasure.erase_lead(session, "first", PII_KEY, NOW)
    write(sessions, demo_schema, [batch({"second": (40, "C")})])
    write(sessions, demo_schema, [batch({"second": (90, "A")}, NOW + timedelta(1))])
    again = {d.id for d in deliveries(sessions)}
    assert again and not again & erased and min(again) > max(erased)


def test_the_previous_score_is_the_newest_and_among_equal_times_the_last_written(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    """30 scores of one lead at one instant (retried requests), and scores of another written
    out of time order: the later time wins over the later write."""
    tied = [batch({"tied": (score, "C")}) for score in range(30)]
    later, earlier = (
        batch({"mixed": (80, "A")}, NOW),
        batch({"mixed": (20, "D")}, NOW - timedelta(1)),
    )
    write(sessions, demo_schema, [*tied, later, earlier], rules=None)
    with sessions() as session:
        newest = latest_scores(session, ["tied", "mixed", "never-scored"])
        last_written = session.scalar(
            select(func.max(ScoreSnapshot.id)).where(ScoreSnapshot.lead_id == "tied")
        )
    assert set(newest) == {"tied", "mixed"}
    assert (newest["tied"].score, newest["tied"].snapshot_id) == (29, last_written)
    assert (newest["mixed"].score, newest["mixed"].scored_at) == (80, NOW)


def test_reading_the_previous_scores_costs_the_same_whatever_the_history(
    tmp_path: Path, demo_schema: LeadSchema
) -> None:
    """The read runs while SQLite's write lock is held: its work (SQLite's virtual machine
    steps, counted) must not grow with the leads' number of past scores."""
    sessions = open_store(f"sqlite:///{tmp_path}/history.db")
    engine = engine_of(sessions)

    def steps(history: int, prefix: str) -> int:
        leads = [f"{prefix}-{i}" for i in range(20)]
        past = [
            batch(dict.fromkeys(leads, (40, "C")), NOW - timedelta(minutes=n))
            for n in range(history)
        ]
        write(sessions, demo_schema, past, rules=None)
        counted = [0]

        def count() -> int:
            counted[0] += 1
            return 0  # go on

        with sessions() as session:
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            raw.set_progress_handler(count, 10)
            try:
                assert len(latest_scores(session, leads)) == len(leads)
            finally:
                raw.set_progress_handler(None, 10)
        return counted[0]

    try:
        short, long = steps(2, "short"), steps(200, "long")
    finally:
        engine.dispose()
    assert long < 2 * short, (short, long)


def test_the_writer_process_writes_the_deliveries(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """The rules reach the writer process through its pipe."""
    queued = SnapshotWriter(database_url, demo_schema, PII_KEY, capacity=100, webhook_rules=GRADES)
    queued.submit(batch({"a": (40, "C")}))
    queued.submit(batch({"a": (90, "A")}, NOW + timedelta(1)))
    queued.close()
    assert [(d.event, d.lead_id) for d in deliveries(sessions)] == [("grade_changed", "a")]


# --- claims ---------------------------------------------------------------------------------


def owe(sessions: sessionmaker[Session], schema: LeadSchema, n: int) -> None:
    """`n` grade changes due at NOW."""
    leads = {f"lead-{i:04d}": (40, "C") for i in range(n)}
    write(sessions, schema, [batch(leads, NOW - timedelta(1))], rules=GRADES)
    write(sessions, schema, [batch(dict.fromkeys(leads, (90, "A")))], rules=GRADES)


def test_a_claim_takes_due_deliveries_once_until_it_expires(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    owe(sessions, demo_schema, 3)
    until = NOW + timedelta(minutes=1)
    with sessions.begin() as session:
        assert claim_due(session, NOW - timedelta(seconds=1), until, 10) == []  # not yet due
        first = claim_due(session, NOW, until, 2)
    assert [c.lead_id for c in first] == ["lead-0000", "lead-0001"]
    with sessions.begin() as session:
        second = claim_due(session, NOW, until, 10)
    assert [c.lead_id for c in second] == ["lead-0002"]
    with sessions.begin() as session:
        assert claim_due(session, NOW + timedelta(seconds=30), until, 10) == []
        again = claim_due(session, until, until + timedelta(minutes=1), 10)
    assert len(again) == 3  # the claims expired: the dispatchers holding them are gone
    with sessions.begin() as session:
        # A dispatcher whose claim expired records nothing: the delivery is another's now.
        assert not record_attempt(session, first[0], {"status": "delivered"})
        assert record_attempt(session, again[0], {"status": "delivered"})
    assert [d.attempts for d in deliveries(sessions)] == [1, 0, 0]


def test_a_claim_no_longer_holds_a_delivery_erased_or_taken_since(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    owe(sessions, demo_schema, 3)
    until = NOW + timedelta(minutes=1)
    with sessions.begin() as session:
        claimed = claim_due(session, NOW, until, 3)
    with sessions() as session:
        assert still_held(session, claimed) == {c.id for c in claimed}
    with sessions.begin() as session:
        erasure.erase_lead(session, "lead-0000", PII_KEY, NOW)
        (taken,) = claim_due(session, until, until + timedelta(minutes=1), 1)  # expired
    assert taken.lead_id == "lead-0001"
    with sessions() as session:
        assert still_held(session, claimed) == {claimed[2].id}
        assert still_held(session, []) == set()


def test_two_dispatchers_claiming_at_once_never_take_the_same_delivery(
    sessions: sessionmaker[Session], demo_schema: LeadSchema, database_url: str
) -> None:
    """Four dispatchers, each with its own connection, claim 5 at a time from the same 120
    deliveries, all at once, until none is left: each delivery is taken exactly once."""
    owe(sessions, demo_schema, 120)
    stores = [open_store(database_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    taken: list[list[int]] = [[] for _ in stores]
    errors: list[BaseException] = []

    def dispatcher(index: int) -> None:
        try:
            start.wait()
            while True:
                with stores[index].begin() as session:
                    claimed = claim_due(session, NOW, NOW + timedelta(hours=1), 5)
                if not claimed:
                    return
                taken[index] += [c.id for c in claimed]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.kw["bind"].dispose()
    assert errors == []
    every = [delivery_id for ids in taken for delivery_id in ids]
    assert len(every) == len(set(every)) == 120
    assert sum(bool(ids) for ids in taken) >= 2, "one dispatcher took all: no race was run"


def test_deliveries_are_listed_newest_first_by_status_and_lead(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    owe(sessions, demo_schema, 5)
    ids = [d.id for d in deliveries(sessions)]
    with sessions.begin() as session:
        (claimed,) = claim_due(session, NOW, NOW + timedelta(minutes=1), 1)
        record_attempt(session, claimed, {"status": "failed", "next_attempt_at": None})
    with sessions() as session:
        assert [d.id for d in deliveries_page(session, None, None, None, 3)] == ids[::-1][:3]
        assert [d.id for d in deliveries_page(session, None, None, ids[2], 10)] == ids[1::-1]
        failed = deliveries_page(session, DeliveryStatus.FAILED, None, None, 10)
        assert [d.id for d in failed] == [claimed.id]
        mine = deliveries_page(session, None, "lead-0003", None, 10)
        assert [d.lead_id for d in mine] == ["lead-0003"]


def test_the_migration_adds_and_removes_the_table(sessions: sessionmaker[Session]) -> None:
    engine: Engine = engine_of(sessions)
    downgrade(engine, "0007")
    assert "webhook_deliveries" not in inspect(engine).get_table_names()
    migrate(engine)
    assert schema_differences(engine) == []
