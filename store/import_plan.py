"""Plan an import: an export's text rows as typed leads and outcome events, without any I/O.

A row that cannot be read is collected with its line and a reason instead of stopping the plan,
so the user sees every problem of a file at once. A lead listed twice is kept once; listed again
with other values, it is malformed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from features.encoding import FALSE_TOKENS, TRUE_TOKENS, EncodingError, category_label
from features.schema import FieldRole, FieldType, LeadField, LeadSchema
from features.schema_inference import MISSING_TOKENS, parse_timestamps
from features.validation import LEAD_ID_KEY
from store.export_reader import ImportFileError, Malformed, RawTable
from store.outcomes import CLOSING_OUTCOMES
from store.row_order import times_from_row_order


@dataclass(frozen=True)
class OutcomeMapping:
    """Which values of the outcome column mean won, lost or disqualified; others mean open."""

    column: str
    won: frozenset[str]
    lost: frozenset[str] = frozenset()
    disqualified: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.won:
            raise ImportFileError("give at least one --won value")
        overlap = (self.won & self.lost) | (self.won & self.disqualified)
        overlap |= self.lost & self.disqualified
        if overlap:
            raise ImportFileError(f"values listed under two outcomes: {sorted(overlap)}")

    def outcome(self, value: str | None) -> str | None:
        by_outcome = zip(CLOSING_OUTCOMES, (self.won, self.lost, self.disqualified), strict=True)
        return next((outcome for outcome, values in by_outcome if value in values), None)


#: Values of the outcome column listed in a warning, most common first.
SHOWN_VALUES = 10


def unseen_outcome_values(outcomes: OutcomeMapping, column: pd.Series) -> tuple[str, ...]:
    """A warning when a --won, --lost or --disqualified value never occurs in the column.

    Such a value is most often a typo or the wrong case ("Won" for "won"); the leads it was
    meant for are imported as open and never trained on, without anything failing.
    """
    counts = column.dropna().map(str.strip).value_counts()
    by_option = {"won": outcomes.won, "lost": outcomes.lost, "disqualified": outcomes.disqualified}
    unseen = [
        f"--{option} {value!r}"
        for option, values in by_option.items()
        for value in sorted(values)
        if value not in counts.index
    ]
    if not unseen:
        return ()
    verb = "never occurs" if len(unseen) == 1 else "never occur"
    common = ", ".join(f"{v!r} ({n:,})" for v, n in counts.head(SHOWN_VALUES).items())
    more = len(counts) - SHOWN_VALUES
    values = f"{common}, and {more:,} more" if more > 0 else common or "none, it is empty"
    return (f"{', '.join(unseen)} {verb} in {outcomes.column!r}; its values: {values}",)


@dataclass(frozen=True)
class ImportPlan:
    leads: list[dict[str, Any]]
    created_at: list[datetime]
    outcomes: list[dict[str, Any]]
    malformed: list[Malformed]
    time_from_row_order: bool
    newest_first: bool = False

    @property
    def n_open(self) -> int:
        return len(self.leads) - len(self.outcomes)


def typed_value(lead_field: LeadField, raw: str | None) -> Any:
    """One raw text value as its field's type (None when missing); ValueError if it is not."""
    if raw is None or raw.strip().lower() in MISSING_TOKENS:
        return None
    text = raw.strip()
    if lead_field.type is FieldType.NUMERIC:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(f"{lead_field.name}: {raw!r} is not a finite number")
        return number
    if lead_field.type is FieldType.BOOLEAN:
        if text.lower() in TRUE_TOKENS:
            return True
        if text.lower() in FALSE_TOKENS:
            return False
        raise ValueError(f"{lead_field.name}: {raw!r} is not yes/no")
    if lead_field.type is FieldType.TIMESTAMP:
        moment = _timestamp(text)
        if moment is None:
            raise ValueError(f"{lead_field.name}: {raw!r} is not a date")
        return moment
    return category_label(text) if lead_field.type is FieldType.CATEGORICAL else text


@functools.lru_cache(maxsize=65_536)
def _timestamp(text: str) -> datetime | None:
    """One date or time as aware UTC, None if it is not one. Cached: an export repeats the same
    dates thousands of times, and parsing one through pandas costs a few hundred microseconds."""
    moment = parse_timestamps(pd.Series([text])).iloc[0]
    return None if pd.isna(moment) else moment.to_pydatetime()


def plan_import(
    table: RawTable,
    schema: LeadSchema,
    outcomes: OutcomeMapping,
    now: datetime,
    closed_at: str | None = None,
    newest_first: bool = False,
) -> ImportPlan:
    """Turn text rows into typed leads and outcome events; collect what cannot be read."""
    missing = [c for c in (outcomes.column, closed_at) if c and c not in table.frame.columns]
    if missing:
        raise ImportFileError(f"no column {missing[0]!r} in the file")
    reader = _RowReader.for_columns(schema, table.frame.columns, outcomes, closed_at)
    row_times = times_from_row_order(len(table.frame), now, newest_first)
    records = table.frame.to_dict(orient="records")
    rows, malformed = [], list(table.malformed)
    for row, line, row_time in zip(records, table.lines, row_times, strict=True):
        try:
            rows.append((line, reader.read(row, row_time)))
        except (ValueError, EncodingError) as exc:
            malformed.append(Malformed(line, str(exc)))
    kept, repeated = _first_row_of_each_lead(rows, schema.id_field.name)
    return ImportPlan(
        leads=[row.lead for row in kept],
        created_at=[row.created_at for row in kept],
        outcomes=[row.event for row in kept if row.event is not None],
        malformed=sorted(malformed + repeated, key=lambda m: m.line),
        time_from_row_order=reader.time_field is None,
        newest_first=newest_first,
    )


@dataclass(frozen=True)
class _Row:
    """One row read: the lead, when it was created, and its outcome event if it is closed."""

    lead: dict[str, Any]
    created_at: datetime
    event: dict[str, Any] | None


@dataclass(frozen=True)
class _RowReader:
    """The schema fields a file has and the outcome options: what reading a row needs."""

    id_name: str
    fields: list[LeadField]
    time_field: LeadField | None
    outcomes: OutcomeMapping
    closed_at: str | None

    @classmethod
    def for_columns(
        cls,
        schema: LeadSchema,
        columns: pd.Index,
        outcomes: OutcomeMapping,
        closed_at: str | None,
    ) -> _RowReader:
        return cls(
            id_name=schema.id_field.name,
            fields=[f for f in schema.fields if f.name in columns],
            time_field=schema.field_with_role(FieldRole.TIME),
            outcomes=outcomes,
            closed_at=closed_at,
        )

    def read(self, row: dict[str, Any], row_time: datetime) -> _Row:
        """The row as a lead and its outcome event; ValueError or EncodingError if it cannot."""
        lead = self._lead(row)
        created_at = lead.get(self.time_field.name) if self.time_field else None
        outcome = self.outcomes.outcome(_strip(row.get(self.outcomes.column)))
        if created_at is None and (self.time_field is None or outcome is None):
            created_at = row_time  # open leads without a date are dated at import
        elif created_at is None:
            raise ValueError(f"a closed lead needs {self.time_field.name}")
        if outcome is None:
            return _Row(lead, created_at, None)
        occurred_at = _closed_at(row, self.closed_at, created_at)
        return _Row(lead, created_at, _outcome_event(lead[LEAD_ID_KEY], outcome, occurred_at))

    def _lead(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row's fields as typed values, its id under the lead id key."""
        lead = {f.name: typed_value(f, row.get(f.name)) for f in self.fields}
        lead_id = lead.pop(self.id_name, None)
        if lead_id is None:
            raise ValueError(f"no {self.id_name}")
        lead[LEAD_ID_KEY] = lead_id
        return lead


def _strip(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _closed_at(row: dict[str, Any], column: str | None, created_at: datetime) -> datetime:
    """When the outcome happened: the close-date column if given, else the lead's own time."""
    raw = row.get(column) if column else None
    if raw is None:
        return created_at
    moment = _timestamp(raw)
    if moment is None:
        raise ValueError(f"{column}: {raw!r} is not a date")
    if moment < created_at:
        raise ValueError(f"{column} {raw} is before the lead was created")
    return moment


def _outcome_event(lead_id: str, outcome: str, occurred_at: datetime) -> dict[str, Any]:
    """The closing event; its id comes from the lead, so importing a file again adds nothing."""
    return {
        "event_id": f"import:{lead_id}:{outcome}",
        "lead_id": lead_id,
        "outcome": outcome,
        "occurred_at": occurred_at,
        "amount": None,
        "reason": None,
    }


def _first_row_of_each_lead(
    rows: list[tuple[int, _Row]], id_name: str
) -> tuple[list[_Row], list[Malformed]]:
    """Each lead's first row; a later row with other values for the same id is malformed."""
    seen: dict[str, tuple[int, dict[str, Any]]] = {}
    kept, repeated = [], []
    for line, row in rows:
        lead_id = row.lead[LEAD_ID_KEY]
        if lead_id not in seen:
            seen[lead_id] = (line, row.lead)
            kept.append(row)
        elif seen[lead_id][1] != row.lead:
            first_line = seen[lead_id][0]
            reason = f"{id_name} {lead_id!r} also on line {first_line}, with other values"
            repeated.append(Malformed(line, reason))
    return kept, repeated
