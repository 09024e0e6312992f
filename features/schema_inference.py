"""Infer a lead schema from a CRM export, for a person to review before training.

The inference is deliberately plain: a column is numeric only if every value is a number,
boolean only if every value is yes/no-like, a timestamp only if every value is an ISO date.
Other text is a category when its values repeat, however many there are: campaign ids, landing
pages, UTM codes, territories and product codes are often a CRM's most telling inputs, and the
encoder groups their rare values (`features.encoding.MIN_CATEGORY_COUNT`). Only text that
hardly repeats (an id, a note) or reads as sentences is set aside as an attribute. Each field's
`description` says why, for the reviewer; the leakage guard (not this module) decides what may
reach the model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from features.encoding import (
    FALSE_TOKENS,
    MIN_CATEGORY_COUNT,
    TRUE_TOKENS,
    frequent_categories,
)
from features.schema import FieldRole, FieldType, LeadField, LeadSchema

#: Text that means "no value" in exports.
MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "none", "nan"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PII_NAME = re.compile(r"e-?mail|phone|mobile|first.?name|last.?name|full.?name|address", re.I)
#: Leads per distinct value, on average, from which text is a category: values that repeat this
#: often are levels a model can learn (an id repeats about once, a note never).
MIN_LEADS_PER_VALUE = 5
#: Up to this many distinct values text is a category whatever the export's size: a pick-list
#: in a small export repeats little, yet it is still a pick-list.
FEW_VALUES = 20
#: Text whose median value has more words than this is free text (notes, messages), not a
#: category: pick-list labels, even long ones ("Will revert after reading the email"), are
#: shorter.
LONG_TEXT_WORDS = 8


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


def infer_field(name: str, column: pd.Series) -> LeadField:
    """The type of one column of raw text, the role its values suggest, and why."""
    values = present_values(column)
    if values.empty:
        return _field(name, FieldType.CATEGORICAL, FieldRole.FEATURE, "categorical: no values here")
    lowered = set(values.str.lower().unique())
    words = (TRUE_TOKENS | FALSE_TOKENS) - {"0", "1"}
    if lowered <= words or lowered <= {"0", "1"} and len(lowered) == 2:
        return _field(name, FieldType.BOOLEAN, FieldRole.FEATURE, "boolean: yes/no values")
    # Before the number test: a phone number is all digits, and must never become a feature.
    if values.str.match(_EMAIL).mean() > 0.5 or _PII_NAME.search(name):
        clue = "its name" if _PII_NAME.search(name) else "e-mail addresses"
        why = f"personal data ({clue}): stored as a keyed hash, never a model input"
        return _field(name, FieldType.TEXT, FieldRole.PII, why)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all():
        if (numbers >= 0).all() and (numbers == numbers.round()).all():
            why = "numeric: every value a whole number, none negative (a count: minimum 0)"
            return LeadField(
                name=name,
                type=FieldType.NUMERIC,
                role=FieldRole.FEATURE,
                description=why,
                minimum=0,
            )
        return _field(name, FieldType.NUMERIC, FieldRole.FEATURE, "numeric: every value a number")
    if values.str.contains(r"\d{4}-\d{2}-\d{2}").all() and parse_timestamps(values).notna().all():
        why = "set aside: a date (kept with the lead, not a model input as it is)"
        return _field(name, FieldType.TIMESTAMP, FieldRole.ATTRIBUTE, why)
    median_words = values.str.split().str.len().median()
    if median_words > LONG_TEXT_WORDS:
        why = f"set aside: long free text (median {median_words:.0f} words)"
        return _field(name, FieldType.TEXT, FieldRole.ATTRIBUTE, why)
    distinct = values.nunique()
    per_value = len(values) / distinct
    if per_value < MIN_LEADS_PER_VALUE and distinct > FEW_VALUES:
        why = (
            f"set aside: {distinct / len(values):.0%} of values distinct, {per_value:.1f} leads "
            f"each on average (an id or free text)"
        )
        return _field(name, FieldType.TEXT, FieldRole.ATTRIBUTE, why)
    return _field(name, FieldType.CATEGORICAL, FieldRole.FEATURE, categorical_why(values))


def categorical_why(values: pd.Series) -> str:
    """How many values a category has, and how many will be grouped as "other" at training."""
    counts = Counter(values)
    distinct = len(counts)
    why = f"categorical: {distinct:,} values, {len(values) / distinct:,.0f} leads each on average"
    rare = distinct - len(frequent_categories(counts))
    if rare:
        why += f"; {rare:,} of them under {MIN_CATEGORY_COUNT} leads, grouped as 'other'"
    return why


def _field(name: str, field_type: FieldType, role: FieldRole, why: str) -> LeadField:
    return LeadField(name=name, type=field_type, role=role, description=why)


def infer_schema(
    frame: pd.DataFrame, roles: ColumnRoles, name: str, description: str = ""
) -> LeadSchema:
    """A schema for `frame`'s columns (raw text), with the named columns in their roles."""
    fixed: Mapping[str, tuple[FieldType, FieldRole, str]] = {
        column: typed
        for column, typed in (
            (roles.id, (FieldType.TEXT, FieldRole.ID, "--id")),
            (roles.time, (FieldType.TIMESTAMP, FieldRole.TIME, "--time")),
            (roles.source, (FieldType.CATEGORICAL, FieldRole.SOURCE, "--source")),
            (roles.lead_type, (FieldType.CATEGORICAL, FieldRole.LEAD_TYPE, "--lead-type")),
        )
        if column is not None
    }
    fields = []
    for column in frame.columns:
        if column not in fixed:
            fields.append(infer_field(column, frame[column]))
            continue
        field_type, role, option = fixed[column]
        why = f"{role} ({option})"
        values = present_values(frame[column])
        if field_type is FieldType.CATEGORICAL and not values.empty:
            why += f"; {categorical_why(values)}"
        fields.append(_field(column, field_type, role, why))
    return LeadSchema(name=name, description=description, fields=tuple(fields))
