"""The point-in-time join: features as they were before the outcome, never after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from features.schema import LeadSchema
from store.repository import TrainingFrames
from training.dataset import AS_OF, LABEL, ORIGIN, OUTCOME, build_training_set

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def frames(leads: list[tuple], snapshots: list[tuple], outcomes: list[tuple]) -> TrainingFrames:
    return TrainingFrames(
        open_leads=pd.DataFrame(columns=["lead_id", "created_at", "attributes"]),
        leads=pd.DataFrame(leads, columns=["lead_id", "created_at", "attributes"]),
        snapshots=pd.DataFrame(snapshots, columns=["lead_id", "scored_at", "features"]),
        outcomes=pd.DataFrame(
            [(lead, f"e{i}", outcome, at, i) for i, (lead, outcome, at) in enumerate(outcomes)],
            columns=["lead_id", "event_id", "outcome", "occurred_at", "crm_sequence"],
        ),
    )


def by_lead(rows: pd.DataFrame) -> dict[str, pd.Series]:
    return {row["lead_id"]: row for _, row in rows.iterrows()}


def test_latest_snapshot_before_the_outcome_is_used(demo_schema: LeadSchema) -> None:
    rows = build_training_set(
        frames(
            leads=[("a", day(0), {"page_views": 1})],
            snapshots=[
                ("a", day(1), {"page_views": 5}),
                ("a", day(3), {"page_views": 9}),
                ("a", day(12), {"page_views": 50}),  # after the outcome: not what sales saw
            ],
            outcomes=[("a", "won", day(10))],
        ),
        demo_schema,
    )
    row = by_lead(rows)["a"]
    assert row["page_views"] == 9 and row[AS_OF] == pd.Timestamp(day(3)) and row[LABEL] == 1
    assert row[ORIGIN] == "snapshot"


def test_stored_row_is_the_fallback_without_an_earlier_snapshot(demo_schema: LeadSchema) -> None:
    rows = build_training_set(
        frames(
            leads=[("a", day(0), {"page_views": 2, "source": "webinar"})],
            snapshots=[("a", day(20), {"page_views": 70})],
            outcomes=[("a", "lost", day(10))],
        ),
        demo_schema,
    )
    row = by_lead(rows)["a"]
    assert (row["page_views"], row["source"], row[ORIGIN]) == (2, "webinar", "lead")
    assert row[AS_OF] == pd.Timestamp(day(0)) and row[LABEL] == 0


def test_lead_stored_after_its_outcome_is_left_out(demo_schema: LeadSchema) -> None:
    rows = build_training_set(
        frames(
            leads=[("late", day(5), {}), ("ok", day(0), {})],
            snapshots=[],
            outcomes=[("late", "won", day(2)), ("ok", "won", day(2))],
        ),
        demo_schema,
    )
    assert list(rows["lead_id"]) == ["ok"]


def test_latest_closing_outcome_labels_the_lead(demo_schema: LeadSchema) -> None:
    rows = build_training_set(
        frames(
            leads=[("a", day(0), {}), ("b", day(0), {})],
            snapshots=[],
            outcomes=[
                ("a", "lost", day(5)),
                ("a", "won", day(9)),  # re-opened and won
                ("b", "won", day(4)),
                ("b", "disqualified", day(6)),
            ],
        ),
        demo_schema,
    )
    found = by_lead(rows)
    assert (found["a"][OUTCOME], found["a"][LABEL]) == ("won", 1)
    assert (found["b"][OUTCOME], found["b"][LABEL]) == ("disqualified", 0)


def test_only_fields_known_at_scoring_become_columns(demo_schema: LeadSchema) -> None:
    rows = build_training_set(
        frames(
            leads=[("a", day(0), {"sales_rating": "hot", "industry": "retail"})],
            snapshots=[],
            outcomes=[("a", "won", day(9))],
        ),
        demo_schema,
    )
    model_fields = [f.name for f in demo_schema.model_fields_in_order]
    schema_columns = {f.name for f in demo_schema.fields} - {"lead_id"}
    assert [c for c in rows.columns if c in schema_columns] == model_fields
    assert "sales_rating" not in rows.columns and "email" not in rows.columns
    assert rows.loc[0, "industry"] == "retail"


@pytest.mark.parametrize("n_leads", [0, 1])
def test_empty_and_tiny_stores_give_frames_not_errors(
    demo_schema: LeadSchema, n_leads: int
) -> None:
    leads = [(f"l{i}", day(0), {}) for i in range(n_leads)]
    outcomes = [(f"l{i}", "won", day(1)) for i in range(n_leads)]
    rows = build_training_set(frames(leads, [], outcomes), demo_schema)
    assert len(rows) == n_leads
