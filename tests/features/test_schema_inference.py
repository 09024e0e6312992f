"""Schema inference from raw export text: sure of a type only when every value agrees."""

from __future__ import annotations

import pandas as pd
import pytest

from features.schema import FieldRole, FieldType
from features.schema_inference import ColumnRoles, infer_schema, infer_type


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
def test_infer_type(name: str, values: list[str | None], expected: tuple) -> None:
    assert infer_type(name, pd.Series(values, dtype=object)) == expected


def test_many_distinct_strings_are_free_text_not_a_category() -> None:
    notes = pd.Series([f"called on day {i}, will follow up" for i in range(3_000)], dtype=object)
    assert infer_type("notes", notes) == (FieldType.TEXT, FieldRole.ATTRIBUTE)


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
