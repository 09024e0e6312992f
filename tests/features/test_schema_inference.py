"""Schema inference from raw export text: sure of a type only when every value agrees, a category
whenever values repeat, and a reason for the reviewer on every field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.encoding import MIN_CATEGORY_COUNT
from features.schema import FieldRole, FieldType, parse_schema
from features.schema_inference import (
    FEW_VALUES,
    LONG_TEXT_WORDS,
    MIN_LEADS_PER_VALUE,
    ColumnRoles,
    infer_field,
    infer_schema,
)


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("visits", ["1", "2.5", None, "0"], (FieldType.NUMERIC, FieldRole.FEATURE)),
        ("Do Not Email", ["Yes", "No", "no"], (FieldType.BOOLEAN, FieldRole.FEATURE)),
        ("flag", ["0", "1", "1"], (FieldType.BOOLEAN, FieldRole.FEATURE)),
        (
            "signed_up",
            ["2024-01-02", "2024-03-04 10:00:00"],
            (FieldType.TIMESTAMP, FieldRole.ATTRIBUTE),
        ),
        ("contact", ["a@b.example", "c@d.example", "x"], (FieldType.TEXT, FieldRole.PII)),
        ("Phone Number", ["555 123", "555 456"], (FieldType.TEXT, FieldRole.PII)),
        ("phone", ["5551234567", "5559876543"], (FieldType.TEXT, FieldRole.PII)),
        ("city", ["Paris", "Lyon", "Paris"], (FieldType.CATEGORICAL, FieldRole.FEATURE)),
        ("mixed", ["12", "twelve"], (FieldType.CATEGORICAL, FieldRole.FEATURE)),
        ("empty", [None, "", "NA"], (FieldType.CATEGORICAL, FieldRole.FEATURE)),
    ],
)
def test_infer_field(name: str, values: list[str | None], expected: tuple) -> None:
    inferred = infer_field(name, pd.Series(values, dtype=object))
    assert (inferred.type, inferred.role) == expected
    assert inferred.description, "every inferred field says why"


def id_like_column(levels: int, seed: int = 0) -> pd.Series:
    """Landing-page-like ids: `levels` values, a few frequent and a long tail of rare ones."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(1, rng.lognormal(2.5, 1.0, levels).round().astype(int))
    values = [f"LP-{level:04d}" for level, n in enumerate(counts) for _ in range(n)]
    return pd.Series(rng.permutation(np.array(values, dtype=object)), dtype=object)


def test_an_id_like_column_whose_values_repeat_is_a_category() -> None:
    """Hundreds of values that repeat (campaigns, landing pages) are an input, not text."""
    column = id_like_column(300)
    counts = column.value_counts()
    assert len(counts) == 300 and len(column) / 300 >= MIN_LEADS_PER_VALUE
    rare = int((counts < MIN_CATEGORY_COUNT).sum())
    assert 0 < rare < 300

    inferred = infer_field("landing", column)

    assert (inferred.type, inferred.role) == (FieldType.CATEGORICAL, FieldRole.FEATURE)
    assert inferred.description.startswith("categorical: 300 values, ")
    assert f"{rare} of them under {MIN_CATEGORY_COUNT} leads, grouped as 'other'" in (
        inferred.description
    )


def test_a_near_unique_column_is_set_aside() -> None:
    """Values that hardly repeat (an id, a reference) cannot be learned as levels."""
    values = [f"REF-{i}" for i in range(970)] + ["REF-1"] * 30
    inferred = infer_field("reference", pd.Series(values, dtype=object))
    assert (inferred.type, inferred.role) == (FieldType.TEXT, FieldRole.ATTRIBUTE)
    assert inferred.description == (
        "set aside: 97% of values distinct, 1.0 leads each on average (an id or free text)"
    )


def test_values_repeating_too_little_are_set_aside_even_when_not_unique() -> None:
    """Fewer than MIN_LEADS_PER_VALUE leads per value on average, beyond a pick-list's size."""
    values = [f"code {i % 400}" for i in range(1_000)]  # 2.5 leads a value
    inferred = infer_field("code", pd.Series(values, dtype=object))
    assert inferred.role is FieldRole.ATTRIBUTE
    assert "40% of values distinct, 2.5 leads each" in inferred.description


def test_a_small_pick_list_is_a_category_even_in_a_small_export() -> None:
    """A handful of leads cannot show repeats; a handful of distinct values still is a list."""
    values = [f"region {i}" for i in range(FEW_VALUES)]
    assert infer_field("region", pd.Series(values, dtype=object)).role is FieldRole.FEATURE
    more = [f"region {i}" for i in range(FEW_VALUES + 1)]
    assert infer_field("region", pd.Series(more, dtype=object)).role is FieldRole.ATTRIBUTE


def test_long_free_text_is_set_aside_even_when_it_repeats() -> None:
    """Sentences are notes, not levels, however often a template repeats them."""
    sentences = [
        f"called the prospect about offer {i} and left a message asking for a call back"
        for i in range(50)
    ]
    column = pd.Series(sentences * 12, dtype=object)  # 12 leads per value, 15 words each
    inferred = infer_field("notes", column)
    assert (inferred.type, inferred.role) == (FieldType.TEXT, FieldRole.ATTRIBUTE)
    assert inferred.description == "set aside: long free text (median 15 words)"
    # Labels of a pick-list, even long ones, stay categories.
    labels = pd.Series([" ".join(["word"] * LONG_TEXT_WORDS), "short label"] * 10, dtype=object)
    assert infer_field("answer", labels).type is FieldType.CATEGORICAL


def test_many_distinct_strings_are_free_text_not_a_category() -> None:
    notes = pd.Series([f"called on day {i}, will follow up" for i in range(3_000)], dtype=object)
    assert infer_field("notes", notes).role is FieldRole.ATTRIBUTE


def test_named_columns_take_their_roles() -> None:
    frame = pd.DataFrame(
        {
            "Prospect ID": ["a", "b"],
            "created": ["2024-01-01", "2024-01-02"],
            "Lead Source": ["Google", "Referral"],
            "visits": ["3", "4"],
        },
        dtype=object,
    )
    roles = ColumnRoles(id="Prospect ID", time="created", source="Lead Source")
    schema = infer_schema(frame, roles, name="export")
    assert schema.id_field.name == "Prospect ID"
    assert schema.by_name["created"].role is FieldRole.TIME
    assert schema.by_name["Lead Source"].role is FieldRole.SOURCE
    assert [f.name for f in schema.model_fields_in_order] == ["Lead Source", "visits"]
    assert schema.by_name["Prospect ID"].description == "id (--id)"
    assert schema.by_name["Lead Source"].description.startswith(
        "source (--source); categorical: 2 values, "
    )


def test_the_schema_file_tells_the_reviewer_why() -> None:
    """The reasons are written into the YAML a person reviews, and read back with it."""
    frame = pd.DataFrame(
        {"id": [str(i) for i in range(600)], "landing": [f"LP-{i % 60}" for i in range(600)]},
        dtype=object,
    )
    schema = infer_schema(frame, ColumnRoles(id="id"), name="export")
    text = schema.to_yaml()
    assert "description: 'categorical: " in text
    assert parse_schema(text) == schema


@pytest.mark.parametrize(
    ("values", "minimum"),
    [(["0", "3", "12", "3"], 0.0), (["-1", "2", "5"], None), (["0.5", "2", "3"], None)],
)
def test_a_column_of_whole_non_negative_numbers_is_a_count_with_minimum_zero(
    values: list[str], minimum: float | None
) -> None:
    """The API then refuses a negative count instead of storing it."""
    inferred = infer_field("visits", pd.Series(values))
    assert inferred.type is FieldType.NUMERIC
    assert inferred.minimum == minimum
    assert ("minimum 0" in inferred.description) is (minimum is not None)
