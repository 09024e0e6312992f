"""Validate a whole table of leads a column at a time: the fast path of scoring a file.

The lead model (`validation.lead_model`) checks one lead at a time, which costs more than
scoring it. A file's rows are nearly all plain: numbers written as decimals, ISO times, ids and
categories without stray characters. `plain_rows` finds those rows with one vectorised pass
per column (Arrow's regular expressions and float parser) and with rules that are
narrower than the lead model's: a plain value is one the lead model certainly accepts, and
whose text the feature encoder reads exactly as it reads the model's typed value. Every other
row (a number with spaces, "on" for yes, a Unix time, a bad value) goes through the lead model
one by one, which accepts it or names its problem, so a file is refused or scored exactly as
the API would. A test checks the promise on generated values.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.encoding import FALSE_TOKENS, TRUE_TOKENS, decimal_numbers
from features.schema import FieldRole, FieldType, LeadField, LeadSchema
from features.validation import (
    EARLIEST_TIME,
    FUTURE_TOLERANCE,
    LEAD_ID_KEY,
    MAX_CATEGORY_LENGTH,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
)


def _any_case(token: str) -> str:
    """A pattern of `token` in any mix of ASCII upper and lower case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in token)


_NO_CONTROL = r"[^\x{0}-\x{1f}\x{7f}-\x{9f}]"
#: A character Python's `str.strip` keeps: a letter, mark, digit, punctuation or symbol.
_VISIBLE = r"[\p{L}\p{M}\p{N}\p{P}\p{S}]"
_ID = rf"^{_VISIBLE}(?:{_NO_CONTROL}*{_VISIBLE})?$"
#: Full-match patterns of plain values, per field type. RE2's `\d` is ASCII only; its `(?i)`
#: folds case the Unicode way ("yeſ" would match "yes"), so letters are spelt out instead.
_PATTERNS: dict[FieldType, str] = {
    FieldType.CATEGORICAL: rf"^{_NO_CONTROL}*$",
    FieldType.TEXT: r"^[^\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}]*$",
    FieldType.NUMERIC: r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$",
    # Tokens the lead model reads as a boolean and the encoder reads the same way.
    FieldType.BOOLEAN: "^(?:" + "|".join(map(_any_case, TRUE_TOKENS | FALSE_TOKENS)) + ")$",
    FieldType.TIMESTAMP: (
        r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?$"
    ),
}
_MAX_LENGTH = {FieldType.CATEGORICAL: MAX_CATEGORY_LENGTH, FieldType.TEXT: MAX_TEXT_LENGTH}


def plain_rows(schema: LeadSchema, frame: pd.DataFrame, now: datetime) -> np.ndarray:
    """Which rows of `frame` (text or None, columns named as the lead model's fields) are plain:
    every value one the lead model accepts as it is. A column the check does not know, or
    cannot read as text, makes every row not plain (they take the lead model's way)."""
    fields = {f.name: f for f in schema.fields if f.role is not FieldRole.ID}
    plain = np.ones(len(frame), dtype=bool)
    for name in frame.columns:
        try:
            values = pa.array(frame[name].to_numpy(dtype=object), type=pa.string())
        except (pa.ArrowException, TypeError, ValueError):  # not text, or not UTF-8
            return np.zeros(len(frame), dtype=bool)
        if name == LEAD_ID_KEY:
            plain &= _plain_ids(values)
        elif name in fields:
            plain &= _plain_values(fields[name], values, now)
        else:
            return np.zeros(len(frame), dtype=bool)
    return plain


def _plain_ids(values: pa.Array) -> np.ndarray:
    matches = pc.and_(
        pc.match_substring_regex(values, _ID), pc.less_equal(pc.utf8_length(values), MAX_ID_LENGTH)
    )
    return _true_where(matches, missing=False)


def _plain_values(field: LeadField, values: pa.Array, now: datetime) -> np.ndarray:
    matches = pc.match_substring_regex(values, _PATTERNS[field.type])
    if field.type in _MAX_LENGTH:
        matches = pc.and_(matches, pc.less_equal(pc.utf8_length(values), _MAX_LENGTH[field.type]))
    plain = _true_where(matches, missing=True)
    if field.type is FieldType.NUMERIC:
        plain &= _within_bounds(field, values, plain)
    elif field.type is FieldType.TIMESTAMP:
        plain &= _within_time_range(values, plain, now)
    return plain


def _true_where(matches: pa.Array, missing: bool) -> np.ndarray:
    """`matches` as numpy booleans, a missing value counted as `missing`."""
    return pc.fill_null(matches, missing).to_numpy(zero_copy_only=False)


def _within_bounds(field: LeadField, values: pa.Array, plain: np.ndarray) -> np.ndarray:
    """Plain numbers are finite and within the field's bounds (missing ones pass)."""
    numbers = decimal_numbers(pc.if_else(pa.array(plain), values, None))
    present = ~np.isnan(numbers)
    ok = ~present | np.isfinite(numbers)
    if field.minimum is not None:
        ok &= ~present | (numbers >= field.minimum)
    if field.maximum is not None:
        ok &= ~present | (numbers <= field.maximum)
    return ok


def _within_time_range(values: pa.Array, plain: np.ndarray, now: datetime) -> np.ndarray:
    """Plain times read as UTC (naive ones too) and lie between `EARLIEST_TIME` and a little
    after `now`, as the lead model's `in_time_range` wants (missing ones pass)."""
    text = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
    present = plain & text.notna().to_numpy()
    moments = pd.to_datetime(text.where(present), utc=True, format="ISO8601", errors="coerce")
    latest = now + FUTURE_TOLERANCE
    within = moments.notna() & (moments >= EARLIEST_TIME) & (moments <= latest)
    return ~present | within.to_numpy()
