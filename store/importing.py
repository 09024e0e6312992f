"""`leadloop import`: load a CRM export (CSV or Parquet) into the store as leads and outcomes.

Reading and writing are at the edges (`read_table`, `write_import`); `plan_import` in between is
pure. A malformed row is reported with its line number; unless the caller chooses to skip such
rows, nothing is written. Everything is written in one transaction, and re-importing the same
file adds nothing twice (leads are upserted by id, outcome events have ids derived from the row).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from features.encoding import FALSE_TOKENS, TRUE_TOKENS, EncodingError, category_label
from features.schema_inference import MISSING_TOKENS, ColumnRoles, infer_schema, parse_timestamps
from features.schema import FieldRole, FieldType, LeadField, LeadSchema, load_schema
from features.validation import LEAD_ID_KEY
from store.records import lead_row
from store.repository import IngestCounts, add_outcomes, upsert_leads
from store.tables import CLOSING_OUTCOMES

#: Rank correlation with the row order above which a column of ids counts as a sequence.
SEQUENCE_RHO = 0.99


@dataclass(frozen=True)
class Malformed:
    line: int
    reason: str


class ImportFileError(ValueError):
    """The file or the options cannot be imported as asked."""


class MalformedRowsError(ImportFileError):
    """Rows that cannot be read; nothing was imported."""

    def __init__(self, malformed: list[Malformed]) -> None:
        super().__init__(f"{len(malformed)} malformed rows; nothing was imported")
        self.malformed = malformed


@dataclass(frozen=True)
class RawTable:
    """A file's rows as text (None where empty), with the line number each row started on."""

    frame: pd.DataFrame
    lines: list[int]
    malformed: list[Malformed] = field(default_factory=list)


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


def read_table(path: Path, sep: str = ",") -> RawTable:
    """Read a CSV (any separator, a trailing one tolerated) or a Parquet file as text."""
    if not path.is_file():
        raise ImportFileError(f"no such file: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
            raise ImportFileError(f"{path} is not a readable Parquet file: {exc}") from None
        text = frame.astype(object).where(frame.notna(), None)
        text = text.map(lambda v: v if v is None else str(v))
        return RawTable(text.reset_index(drop=True), list(range(2, len(frame) + 2)))
    return _read_csv(path, sep)


def _read_csv(path: Path, sep: str) -> RawTable:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=sep)
            header = next(reader, None)
            if not header:
                raise ImportFileError(f"{path} is empty")
            rows, lines, malformed = [], [], []
            line = reader.line_num + 1
            for record in reader:
                if len(record) == len(header):
                    rows.append([None if v.strip() == "" else v for v in record])
                    lines.append(line)
                elif any(v.strip() for v in record):
                    reason = f"{len(record)} fields where the header has {len(header)}"
                    malformed.append(Malformed(line, reason))
                line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path} is not UTF-8 text: {exc.reason}") from None
    except csv.Error as exc:
        raise ImportFileError(f"{path}: {exc}") from None
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    # Exports that end every line with the separator have an unnamed, empty last column.
    unnamed_empty = [c for c in frame.columns if not c.strip() and frame[c].isna().all()]
    frame = frame.drop(columns=unnamed_empty)
    if not frame.columns.is_unique or any(not c.strip() for c in frame.columns):
        raise ImportFileError(f"{path}: column names must be unique and not empty")
    return RawTable(frame, lines, malformed)


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
        moment = parse_timestamps(pd.Series([text])).iloc[0]
        if pd.isna(moment):
            raise ValueError(f"{lead_field.name}: {raw!r} is not a date")
        return moment.to_pydatetime()
    return category_label(text) if lead_field.type is FieldType.CATEGORICAL else text


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
    id_name = schema.id_field.name
    time_field = schema.field_with_role(FieldRole.TIME)
    fields = [f for f in schema.fields if f.name in table.frame.columns]
    n = len(table.frame)
    order = range(n - 1, -1, -1) if newest_first else range(n)
    row_clock = {i: now - timedelta(seconds=n - k) for k, i in enumerate(order)}
    leads, created, events, malformed = [], [], [], list(table.malformed)
    seen: dict[str, tuple[int, dict[str, Any]]] = {}
    records = table.frame.to_dict(orient="records")
    for i, (row, line) in enumerate(zip(records, table.lines, strict=True)):
        try:
            lead = {f.name: typed_value(f, row.get(f.name)) for f in fields}
            lead_id = lead.pop(id_name, None)
            if lead_id is None:
                raise ValueError(f"no {id_name}")
            lead[LEAD_ID_KEY] = lead_id
            created_at = lead.get(time_field.name) if time_field else None
            outcome = outcomes.outcome(_strip(row.get(outcomes.column)))
            if created_at is None and (time_field is None or outcome is None):
                created_at = row_clock[i]  # open leads without a date are dated at import
            elif created_at is None:
                raise ValueError(f"a closed lead needs {time_field.name}")
            occurred_at = _closed_at(row, closed_at, created_at) if outcome else created_at
        except (ValueError, EncodingError) as exc:
            malformed.append(Malformed(line, str(exc)))
            continue
        if lead_id in seen:
            first_line, first = seen[lead_id]
            if first != lead:
                reason = f"{id_name} {lead_id!r} also on line {first_line}, with other values"
                malformed.append(Malformed(line, reason))
            continue
        seen[lead_id] = (line, lead)
        leads.append(lead)
        created.append(created_at)
        if outcome is not None:
            events.append(
                {
                    "event_id": f"import:{lead_id}:{outcome}",
                    "lead_id": lead_id,
                    "outcome": outcome,
                    "occurred_at": occurred_at,
                    "amount": None,
                    "reason": None,
                }
            )
    return ImportPlan(
        leads=leads,
        created_at=created,
        outcomes=events,
        malformed=sorted(malformed, key=lambda m: m.line),
        time_from_row_order=time_field is None,
        newest_first=newest_first,
    )


def sequence_column(frame: pd.DataFrame) -> tuple[str, bool] | None:
    """A column of unique integers that rises or falls with the rows (an auto-increment id).

    CRMs number leads as they are created, so such a column tells which end of a file without
    dates is the newest. Returns the column and whether the file lists the newest first.
    """
    position = pd.Series(np.arange(len(frame)), dtype=float)
    for column in frame.columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        if len(frame) < 3 or numbers.isna().any() or not numbers.is_unique:
            continue
        if not (numbers == numbers.round()).all():
            continue
        rho = numbers.reset_index(drop=True).corr(position, method="spearman")
        if abs(rho) >= SEQUENCE_RHO:
            return column, rho < 0
    return None


def _strip(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _closed_at(row: dict[str, Any], column: str | None, created_at: datetime) -> datetime:
    """When the outcome happened: the close-date column if given, else the lead's own time."""
    raw = row.get(column) if column else None
    if raw is None:
        return created_at
    moment = parse_timestamps(pd.Series([raw])).iloc[0]
    if pd.isna(moment):
        raise ValueError(f"{column}: {raw!r} is not a date")
    if moment < created_at:
        raise ValueError(f"{column} {raw} is before the lead was created")
    return moment.to_pydatetime()


def write_import(
    session: Session,
    plan: ImportPlan,
    schema: LeadSchema,
    pii_key: bytes,
    received_at: datetime,
) -> IngestCounts:
    """Upsert the plan's leads and add its outcome events in the caller's transaction."""
    rows = [
        lead_row(schema, lead, pii_key, received_at) | {"created_at": created_at}
        for lead, created_at in zip(plan.leads, plan.created_at, strict=True)
    ]
    upsert_leads(session, rows)
    events: Iterable[dict[str, Any]] = (e | {"received_at": received_at} for e in plan.outcomes)
    return add_outcomes(session, list(events))


class RowOrder(StrEnum):
    """How to read time from a file without a time column."""

    AUTO = "auto"  # from an id sequence when there is one, else oldest first
    OLDEST_FIRST = "oldest-first"
    NEWEST_FIRST = "newest-first"


@dataclass(frozen=True)
class ImportRequest:
    """What `leadloop import` was asked to do."""

    path: Path
    roles: ColumnRoles
    outcomes: OutcomeMapping
    schema_out: Path
    drop: tuple[str, ...] = ()
    closed_at: str | None = None
    sep: str = ","
    row_order: RowOrder = RowOrder.AUTO
    skip_malformed: bool = False


@dataclass(frozen=True)
class ImportReport:
    schema: LeadSchema
    schema_written: bool
    plan: ImportPlan
    counts: IngestCounts
    #: The id column whose sequence decided the row order, when "auto" found one.
    sequence: str | None = None


def import_file(
    request: ImportRequest,
    sessions: sessionmaker[Session],
    pii_key: bytes,
    now: datetime,
) -> ImportReport:
    """Read the file, infer (or reuse) its schema, and load its rows in one transaction."""
    table = read_table(request.path, request.sep)
    columns = list(table.frame.columns)
    named = [request.roles.id, request.roles.time, request.roles.source, request.roles.lead_type]
    named += [request.outcomes.column, request.closed_at, *request.drop]
    unknown = [c for c in named if c is not None and c not in columns]
    if unknown:
        raise ImportFileError(f"no column {unknown[0]!r}; the file has: {', '.join(columns)}")
    if request.closed_at and not request.roles.time:
        raise ImportFileError(
            "--closed-at needs --time: without the leads' own dates, outcome dates cannot be "
            "placed after them"
        )
    reused = request.schema_out.is_file()
    if reused:
        schema = load_schema(request.schema_out)
        if schema.id_field.name != request.roles.id:
            raise ImportFileError(
                f"{request.schema_out} says the id is {schema.id_field.name!r}, not "
                f"{request.roles.id!r}; fix one or choose another --schema-out"
            )
    else:
        not_fields = {request.outcomes.column, request.closed_at, *request.drop}
        lead_columns = [c for c in columns if c not in not_fields]
        try:
            schema = infer_schema(
                table.frame[lead_columns],
                request.roles,
                name=request.path.stem,
                description=f"Inferred from {request.path.name} by leadloop import; review it.",
            )
        except ValidationError as exc:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ImportFileError(f"cannot build a lead schema: {problems}") from None
    if request.outcomes.column in schema.by_name:
        raise ImportFileError(f"the outcome column {request.outcomes.column!r} is in the schema")
    auto = request.row_order is RowOrder.AUTO and request.roles.time is None
    sequence = sequence_column(table.frame) if auto else None
    newest_first = request.row_order is RowOrder.NEWEST_FIRST or bool(sequence and sequence[1])
    plan = plan_import(table, schema, request.outcomes, now, request.closed_at, newest_first)
    if plan.malformed and not request.skip_malformed:
        raise MalformedRowsError(plan.malformed)
    with sessions.begin() as session:
        counts = write_import(session, plan, schema, pii_key, now)
    if not reused:
        request.schema_out.parent.mkdir(parents=True, exist_ok=True)
        request.schema_out.write_text(schema.to_yaml(), encoding="utf-8")
    return ImportReport(
        schema=schema,
        schema_written=not reused,
        plan=plan,
        counts=counts,
        sequence=sequence[0] if sequence else None,
    )
