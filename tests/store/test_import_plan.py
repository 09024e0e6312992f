"""Planning an import: text rows to typed leads and outcome events, every bad row by its line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from features.schema import FieldRole, FieldType, LeadField, LeadSchema
from store.export_reader import Malformed, RawTable, separator_hint
from store.import_plan import OutcomeMapping, plan_import, typed_value, unseen_outcome_values

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STAGES = OutcomeMapping("stage", frozenset({"won"}), frozenset({"lost"}))


def field(field_type: FieldType) -> LeadField:
    return LeadField(name="x", type=field_type, role=FieldRole.ATTRIBUTE)


@pytest.mark.parametrize(
    ("field_type", "raw", "expected"),
    [
        (FieldType.NUMERIC, " 3.5 ", 3.5),
        (FieldType.NUMERIC, "N/A", None),
        (FieldType.BOOLEAN, "Yes", True),
        (FieldType.BOOLEAN, "0", False),
        (FieldType.TIMESTAMP, "2025-03-04", datetime(2025, 3, 4, tzinfo=UTC)),
        (FieldType.CATEGORICAL, " Paris ", "Paris"),
        (FieldType.TEXT, None, None),
    ],
)
def test_typed_value(field_type: FieldType, raw: str | None, expected: object) -> None:
    assert typed_value(field(field_type), raw) == expected


@pytest.mark.parametrize(
    ("field_type", "raw"),
    [
        (FieldType.NUMERIC, "inf"),
        (FieldType.NUMERIC, "twelve"),
        (FieldType.BOOLEAN, "maybe"),
        (FieldType.TIMESTAMP, "next week"),
    ],
)
def test_a_value_not_of_its_type_is_refused(field_type: FieldType, raw: str) -> None:
    with pytest.raises(ValueError, match=raw):
        typed_value(field(field_type), raw)


def table(rows: list[list[str | None]]) -> RawTable:
    frame = pd.DataFrame(rows, columns=["id", "visits", "created", "stage"], dtype=object)
    return RawTable(frame, list(range(2, len(rows) + 2)), [Malformed(9, "3 fields")])


def schema(with_time: bool = True) -> LeadSchema:
    fields = [
        LeadField(name="id", type=FieldType.TEXT, role=FieldRole.ID),
        LeadField(name="visits", type=FieldType.NUMERIC),
    ]
    if with_time:
        fields.append(LeadField(name="created", type=FieldType.TIMESTAMP, role=FieldRole.TIME))
    return LeadSchema(name="export", fields=tuple(fields))


def test_rows_become_leads_and_closing_events() -> None:
    rows = [["a", "1", "2025-01-01", "won"], ["b", "2", None, "open"]]
    plan = plan_import(table(rows), schema(), STAGES, NOW)
    assert [lead["lead_id"] for lead in plan.leads] == ["a", "b"]
    assert plan.leads[0]["visits"] == 1.0
    assert plan.created_at == [datetime(2025, 1, 1, tzinfo=UTC), NOW - timedelta(seconds=1)]
    assert plan.outcomes == [
        {
            "event_id": "import:a:won",
            "lead_id": "a",
            "outcome": "won",
            "occurred_at": datetime(2025, 1, 1, tzinfo=UTC),
            "amount": None,
            "reason": None,
        }
    ]
    assert plan.n_open == 1 and not plan.time_from_row_order
    assert plan.malformed == [Malformed(9, "3 fields")]


def test_every_bad_row_is_listed_by_line_and_a_repeated_lead_is_kept_once() -> None:
    rows = [
        ["a", "1", "2025-01-01", "won"],
        ["a", "1", "2025-01-01", "won"],  # the same again: not a problem
        [None, "2", "2025-01-02", "lost"],
        ["c", "many", "2025-01-03", "lost"],
        ["d", "4", None, "lost"],  # closed, but when was it created?
        ["a", "5", "2025-01-01", "won"],
    ]
    plan = plan_import(table(rows), schema(), STAGES, NOW)
    assert [(lead["lead_id"], lead["visits"]) for lead in plan.leads] == [("a", 1.0)]
    assert [m.line for m in plan.malformed] == [4, 5, 6, 7, 9]
    reasons = [m.reason for m in plan.malformed]
    assert reasons[0] == "no id" and "'many'" in reasons[1]
    assert reasons[2] == "a closed lead needs created"
    assert reasons[3] == "id 'a' also on line 2, with other values"


def test_without_a_time_field_every_row_is_dated_by_its_place() -> None:
    rows = [["a", "1", None, "won"], ["b", "2", None, "lost"]]
    plan = plan_import(table(rows), schema(with_time=False), STAGES, NOW, newest_first=True)
    assert plan.time_from_row_order and plan.newest_first
    assert plan.created_at == [NOW - timedelta(seconds=1), NOW - timedelta(seconds=2)]
    assert [e["occurred_at"] for e in plan.outcomes] == plan.created_at


def test_an_outcome_value_that_never_occurs_is_named_with_the_values_that_do() -> None:
    column = pd.Series(["Won", "Lost", "Lost", None, " Lost "] + [f"stage {i}" for i in range(12)])
    mapping = OutcomeMapping("stage", frozenset({"won"}), frozenset({"Lost"}), frozenset({"spam"}))
    (warning,) = unseen_outcome_values(mapping, column)
    assert warning.startswith("--won 'won', --disqualified 'spam' never occur in 'stage'; ")
    assert "its values: 'Lost' (3), 'Won' (1), " in warning and warning.endswith(", and 4 more")
    assert unseen_outcome_values(STAGES, pd.Series(["won", "lost", "open"])) == ()
    (empty,) = unseen_outcome_values(STAGES, pd.Series([None, None], dtype=object))
    assert empty.endswith("its values: none, it is empty")


@pytest.mark.parametrize(
    ("header", "sep", "hint"),
    [
        ("id;visits;stage", ",", "; the header reads as one column: try --sep ';'"),
        ("id\tvisits|x\tstage", ",", "try --sep $'\\t'"),
        ("id|visits", ",", "try --sep '|'"),
        ("id,visits,stage", ";", "try --sep ','"),
        ("id", ",", ""),
    ],
)
def test_a_header_read_as_one_column_hints_at_the_separator(
    header: str, sep: str, hint: str
) -> None:
    assert separator_hint([header], sep).endswith(hint)
    assert separator_hint([header, "other"], sep) == ""
