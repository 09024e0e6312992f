"""Infer a lead schema from a CRM export, for a person to review before training.

The inference is deliberately plain: a column is numeric only if every value is a number,
boolean only if every value is yes/no-like, a timestamp only if every value is an ISO date.
Everything it cannot be sure of stays categorical or text, and the leakage guard (not this
module) decides what may reach the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from features.encoding import FALSE_TOKENS, TRUE_TOKENS
from features.schema import FieldRole, FieldType, LeadField, LeadSchema

#: Text that means "no value" in exports.
MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "none", "nan"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PII_NAME = re.compile(r"e-?mail|phone|mobile|first.?name|last.?name|full.?name|address", re.I)
#: A text column with more distinct values than this share of rows is free text, not a category.
_CATEGORICAL_SHARE = 0.05
_CATEGORICAL_MIN = 100


@dataclass(frozen=True)
class ColumnRoles:
    """The columns the user named on the command line."""

    id: str
    time: str | None = None
    source: str | None = None
    lead_type: str | None = None


def present_values(column: pd.Series) -> pd.Series:
    """The column's values that are not a missing-value token, as stripped text."""
    text = column.dropna().astype(str).str.strip()
    return text[~text.str.lower().isin(MISSING_TOKENS)]


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO dates and times as aware UTC timestamps (NaT where a value is not one)."""
    return pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")


def infer_type(name: str, column: pd.Series) -> tuple[FieldType, FieldRole]:
    """The type of one column of raw text, and the role its values suggest."""
    values = present_values(column)
    if values.empty:
        return FieldType.CATEGORICAL, FieldRole.FEATURE
    lowered = set(values.str.lower().unique())
    words = (TRUE_TOKENS | FALSE_TOKENS) - {"0", "1"}
    if lowered <= words or lowered <= {"0", "1"} and len(lowered) == 2:
        return FieldType.BOOLEAN, FieldRole.FEATURE
    # Before the number test: a phone number is all digits, and must never become a feature.
    if values.str.match(_EMAIL).mean() > 0.5 or _PII_NAME.search(name):
        return FieldType.TEXT, FieldRole.PII
    if pd.to_numeric(values, errors="coerce").notna().all():
        return FieldType.NUMERIC, FieldRole.FEATURE
    if values.str.contains(r"\d{4}-\d{2}-\d{2}").all() and parse_timestamps(values).notna().all():
        return FieldType.TIMESTAMP, FieldRole.ATTRIBUTE
    if values.nunique() > max(_CATEGORICAL_MIN, _CATEGORICAL_SHARE * len(column)):
        return FieldType.TEXT, FieldRole.ATTRIBUTE
    return FieldType.CATEGORICAL, FieldRole.FEATURE


def infer_schema(
    frame: pd.DataFrame, roles: ColumnRoles, name: str, description: str = ""
) -> LeadSchema:
    """A schema for `frame`'s columns (raw text), with the named columns in their roles."""
    fixed: Mapping[str, tuple[FieldType, FieldRole]] = {
        column: typed
        for column, typed in (
            (roles.id, (FieldType.TEXT, FieldRole.ID)),
            (roles.time, (FieldType.TIMESTAMP, FieldRole.TIME)),
            (roles.source, (FieldType.CATEGORICAL, FieldRole.SOURCE)),
            (roles.lead_type, (FieldType.CATEGORICAL, FieldRole.LEAD_TYPE)),
        )
        if column is not None
    }
    fields = []
    for column in frame.columns:
        field_type, role = fixed.get(column) or infer_type(column, frame[column])
        fields.append(LeadField(name=column, type=field_type, role=role))
    return LeadSchema(name=name, description=description, fields=tuple(fields))
