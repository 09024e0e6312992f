"""Turn leads into the model's numeric rows: the one feature path of training and serving.

Training fits a `FeatureEncoder` on its leads and saves it inside the model; serving loads that
same encoder and calls the same `encode`. There is no second implementation to drift apart.
Rows are plain numpy (no DataFrame per request: building one costs several times a prediction).
Missing values become NaN, which LightGBM routes down its learned missing-value branch, so they
are scored rather than refused. A category too rare in training to be learned on its own (a
campaign or landing page with a handful of leads), or never seen there, shares one "other" code
with the rest of them: an id-like field with hundreds of values stays a usable input, and a lead
from a new campaign is scored like leads from rare campaigns, not like leads with no campaign.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import FieldType, LeadSchema

#: Training leads a category needs for a code of its own; rarer ones are grouped as "other".
#: Ten leads is where a level's conversion rate starts to mean something (one in ten convert).
MIN_CATEGORY_COUNT = 10
#: At most this many codes per field (declared ones included), most frequent first: a bound on
#: the model's size, generous enough for the campaign or landing-page ids of a real CRM.
MAX_CATEGORIES = 1_000

#: Evenly spaced shares of the training leads a numeric field's values are kept at (every 5%).
QUANTILES = 20
MIN_QUANTILE_LEADS = 100

#: Text read as a yes or a no, wherever leadloop reads booleans.
TRUE_TOKENS = frozenset({"true", "yes", "y", "1", "t"})
FALSE_TOKENS = frozenset({"false", "no", "n", "0", "f"})


class EncodingError(ValueError):
    """A value cannot be read as its field's type."""


def is_missing(value: Any) -> bool:
    """Tell None, blank strings and NaN of any float type (numpy's, NaT) from real values."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return bool(value != value)  # only NaN-like values differ from themselves
    except TypeError:  # pandas.NA refuses to be a bool
        return True


def _as_float(name: str, value: Any) -> float:
    if is_missing(value):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise EncodingError(f"{name}: {value!r} is not a number") from None


def _as_flag(name: str, value: Any) -> float:
    if is_missing(value):
        return math.nan
    if isinstance(value, bool | int | float):
        return float(bool(value))
    text = str(value).strip().lower()
    if text in TRUE_TOKENS:
        return 1.0
    if text in FALSE_TOKENS:
        return 0.0
    raise EncodingError(f"{name}: {value!r} is not a boolean")


def category_label(value: Any) -> str | None:
    """Canonical text of a categorical value (None when missing)."""
    if is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def decimal_numbers(values: pa.Array) -> np.ndarray:
    """Decimal numbers written as text (None where missing) as float64, NaN where missing.
    Arrow's parser rounds correctly, as Python's `float` and the lead model's parser do."""
    return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class ColumnEncoding:
    """How one schema field becomes one model column."""

    name: str
    kind: FieldType
    categories: tuple[str, ...] = ()
    #: Whether values outside `categories` share the "other" code `len(categories)`. Encoders
    #: saved before rare categories were grouped have none: their models learned such values as
    #: missing (NaN), and must keep reading them so.
    groups_others: bool = False
    #: A numeric field's values at `QUANTILES` + 1 evenly spaced shares of the training leads
    #: (a reason says where a lead's value stands); empty for other kinds and older encoders.
    quantiles: tuple[float, ...] = ()
    _codes: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_codes", {c: i for i, c in enumerate(self.categories)})

    def encode_value(self, value: Any) -> float:
        if self.kind is FieldType.NUMERIC:
            return _as_float(self.name, value)
        if self.kind is FieldType.BOOLEAN:
            return _as_flag(self.name, value)
        label = category_label(value)
        if label is None:
            return math.nan
        code = self._codes.get(label)
        if code is None:
            return float(len(self.categories)) if self.groups_others else math.nan
        return float(code)

    def encode_texts(self, values: np.ndarray) -> np.ndarray:
        """`encode_value` of each value of a column of plain text (None where missing; see
        `table_validation.plain_rows`), vectorised: numbers parsed by Arrow at once, other
        kinds encoded once per distinct value."""
        if self.kind is FieldType.NUMERIC:
            return decimal_numbers(pa.array(values, type=pa.string()))
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        encoded = np.array([self.encode_value(v) for v in uniques] + [math.nan])
        return encoded[codes]


@dataclass(frozen=True)
class FeatureEncoder:
    """The fitted feature logic: column order and category vocabularies."""

    columns: tuple[ColumnEncoding, ...]

    @property
    def feature_names(self) -> list[str]:
        """The field each column encodes, in column order."""
        return [c.name for c in self.columns]

    @property
    def fields(self) -> list[str]:
        """The schema fields this encoder reads, each once, in column order."""
        return list(dict.fromkeys(self.feature_names))

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c.kind is FieldType.CATEGORICAL]

    def encode(self, leads: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode leads (mappings of field name to raw value) as a float64 matrix."""
        rows = np.empty((len(leads), len(self.columns)), dtype=np.float64)
        for j, column in enumerate(self.columns):
            encode_value, name = column.encode_value, column.name
            for i, lead in enumerate(leads):
                rows[i, j] = encode_value(lead.get(name))
        return rows

    def encode_table(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode a table of leads as text (None where missing), a column at a time: the same
        matrix as `encode` of the same values, for a file's rows that `plain_rows` passed."""
        rows = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        for j, column in enumerate(self.columns):
            if column.name in frame.columns:
                rows[:, j] = column.encode_texts(frame[column.name].to_numpy(dtype=object))
            else:
                rows[:, j] = math.nan
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [
                {
                    "name": c.name,
                    "kind": str(c.kind),
                    "categories": list(c.categories),
                    "groups_others": c.groups_others,
                    "quantiles": list(c.quantiles),
                }
                for c in self.columns
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuild a saved encoder; one saved without `groups_others` encodes as it always did."""
        return cls(
            tuple(
                ColumnEncoding(
                    c["name"],
                    FieldType(c["kind"]),
                    tuple(c["categories"]),
                    c.get("groups_others", False),
                    tuple(c.get("quantiles", ())),
                )
                for c in data["columns"]
            )
        )


def frequent_categories(counts: Counter[str], min_count: int = MIN_CATEGORY_COUNT) -> list[str]:
    """The values with at least `min_count` leads, most frequent first: those given a code.

    The encoder applies it to training leads, the import's review to the whole export.
    """
    return [label for label, count in counts.most_common() if count >= min_count]


def fit_encoder(
    schema: LeadSchema,
    leads: Iterable[Mapping[str, Any]],
    max_categories: int = MAX_CATEGORIES,
    exclude: frozenset[str] = frozenset(),
    min_count: int = MIN_CATEGORY_COUNT,
) -> FeatureEncoder:
    """Learn column order and vocabularies from training leads, leaving out `exclude`.

    Declared categories come first in the schema's order (the tenant named them, so they keep a
    code however rare), then observed ones with at least `min_count` leads by frequency, so
    codes are stable across retrains on the same data. Every other value is "other".
    """
    fields = [f for f in schema.model_fields_in_order if f.name not in exclude]
    counts: dict[str, Counter[str]] = {
        f.name: Counter() for f in fields if f.type is FieldType.CATEGORICAL
    }
    numbers: dict[str, list[float]] = {f.name: [] for f in fields if f.type is FieldType.NUMERIC}
    for lead in leads:
        for name, counter in counts.items():
            label = category_label(lead.get(name))
            if label is not None:
                counter[label] += 1
        for name, values in numbers.items():
            try:
                value = _as_float(name, lead.get(name))
            except EncodingError:  # the model reads it as missing; so do the quantiles
                continue
            if math.isfinite(value):
                values.append(value)
    columns = []
    for f in fields:
        categories: tuple[str, ...] = ()
        if f.type is FieldType.CATEGORICAL:
            declared = list(f.categories or ())
            observed = [
                c for c in frequent_categories(counts[f.name], min_count) if c not in declared
            ]
            categories = tuple((declared + observed)[:max_categories])
        quantiles = _quantiles(numbers.get(f.name, []))
        grouped = f.type is FieldType.CATEGORICAL
        columns.append(ColumnEncoding(f.name, f.type, categories, grouped, quantiles))
    return FeatureEncoder(tuple(columns))


def _quantiles(values: list[float]) -> tuple[float, ...]:
    """Kept from `MIN_QUANTILE_LEADS` values on: from a handful, "top 10%" would mean little."""
    if len(values) < MIN_QUANTILE_LEADS:
        return ()
    shares = np.linspace(0.0, 1.0, QUANTILES + 1)
    return tuple(float(q) for q in np.quantile(np.asarray(values), shares))
