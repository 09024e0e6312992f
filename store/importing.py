"""`leadloop import`: load a CRM export (CSV or Parquet) into the store as leads and outcomes.

Reading and writing are at the edges (`read_table`, `write_import`); `plan_import` in between is
pure. A malformed row is reported with its line number; unless the caller chooses to skip such
rows, nothing is written. Everything is written in one transaction, and re-importing the same
file adds nothing twice (leads are upserted by id, outcome events have ids derived from the row).
Each import is recorded with the schema it used, for `leadloop train` to find. Mistakes that do
not stop an import (an outcome value that never occurs, other leads already in the store) are
returned as warnings and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema, load_schema, save_schema
from features.schema_inference import ColumnRoles, infer_schema
from features.validation import LEAD_ID_KEY
from store.erasure import erased_ids
from store.export_reader import ImportFileError, Malformed, read_table, separator_hint
from store.import_plan import ImportPlan, OutcomeMapping, plan_import, unseen_outcome_values
from store.records import lead_row
from store.repository import (
    IngestCounts,
    add_import,
    add_outcomes,
    count_leads,
    latest_import,
    upsert_leads,
)
from store.row_order import RowOrder, sequence_column
from store.tables import Import

log = logging.getLogger(__name__)


class MalformedRowsError(ImportFileError):
    """Rows that cannot be read; nothing was imported."""

    def __init__(self, malformed: list[Malformed]) -> None:
        super().__init__(f"{len(malformed)} malformed rows; nothing was imported")
        self.malformed = malformed


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
    #: What looks like a mistake but did not stop the import.
    warnings: tuple[str, ...] = ()


def import_file(
    request: ImportRequest,
    sessions: sessionmaker[Session],
    pii_key: bytes,
    now: datetime,
) -> ImportReport:
    """Read the file, infer (or reuse) its schema, load its rows and record the import in one
    transaction; log what looks like a mistake."""
    table = read_table(request.path, request.sep)
    _check_columns(request, list(table.frame.columns))
    reused = request.schema_out.is_file()
    schema = _reviewed_schema(request) if reused else _inferred_schema(request, table.frame)
    newest_first, sequence = _row_order(request, table.frame)
    plan = plan_import(table, schema, request.outcomes, now, request.closed_at, newest_first)
    if plan.malformed and not request.skip_malformed:
        raise MalformedRowsError(plan.malformed)
    with sessions.begin() as session:
        previous = latest_import(session)
        counts = write_import(session, plan, schema, pii_key, now)
        others = count_leads(session) - len(plan.leads)
        add_import(session, _import_row(request, schema, len(plan.leads), now))
    if not reused:
        save_schema(schema, request.schema_out)
    warnings = unseen_outcome_values(request.outcomes, table.frame[request.outcomes.column])
    warnings += _other_leads(others, previous)
    for warning in warnings:
        log.warning(warning)
    return ImportReport(
        schema=schema,
        schema_written=not reused,
        plan=plan,
        counts=counts,
        sequence=sequence,
        warnings=warnings,
    )


def write_import(
    session: Session,
    plan: ImportPlan,
    schema: LeadSchema,
    pii_key: bytes,
    received_at: datetime,
) -> IngestCounts:
    """Upsert the plan's leads and add its outcome events in the caller's transaction; a lead
    erased on request stays out, with its events."""
    erased = erased_ids(session, (lead[LEAD_ID_KEY] for lead in plan.leads), pii_key)
    rows = [
        lead_row(schema, lead, pii_key, received_at) | {"created_at": created_at}
        for lead, created_at in zip(plan.leads, plan.created_at, strict=True)
        if lead[LEAD_ID_KEY] not in erased
    ]
    upsert_leads(session, rows)
    events: Iterable[dict[str, Any]] = (
        e | {"received_at": received_at} for e in plan.outcomes if e["lead_id"] not in erased
    )
    return add_outcomes(session, list(events))


def _import_row(
    request: ImportRequest, schema: LeadSchema, n_leads: int, now: datetime
) -> dict[str, Any]:
    """The `imports` row: the schema's absolute path, as `train` may run from elsewhere."""
    return {
        "imported_at": now,
        "file_name": request.path.name,
        "schema_path": str(request.schema_out.resolve()),
        "schema_yaml": schema.to_yaml(),
        "n_leads": n_leads,
    }


def _other_leads(others: int, previous: Import | None) -> tuple[str, ...]:
    """A warning when the store held leads this file does not have: training learns from all
    of them as one tenant's, with one schema."""
    if others <= 0:
        return ()
    last = f" (the last import was {previous.file_name})" if previous else ""
    return (
        f"the store already held {others:,} lead{'s' if others > 1 else ''} that "
        f"{'are' if others > 1 else 'is'} not in this file{last}; "
        "`leadloop train` learns from all of them together: if they are another tenant's, or "
        "another export's with other columns, import into a store of its own "
        "(LEADLOOP_DATABASE_URL)",
    )


def _check_columns(request: ImportRequest, columns: list[str]) -> None:
    """Refuse columns the file does not have, and a close date without the leads' own dates."""
    named = [request.roles.id, request.roles.time, request.roles.source, request.roles.lead_type]
    named += [request.outcomes.column, request.closed_at, *request.drop]
    unknown = [c for c in named if c is not None and c not in columns]
    if unknown:
        raise ImportFileError(
            f"no column {unknown[0]!r}; the file has: {', '.join(columns)}"
            + separator_hint(columns, request.sep)
        )
    if request.closed_at and not request.roles.time:
        raise ImportFileError(
            "--closed-at needs --time: without the leads' own dates, outcome dates cannot be "
            "placed after them"
        )


def _reviewed_schema(request: ImportRequest) -> LeadSchema:
    """The schema an earlier import wrote (and a person may have edited), if it fits the file."""
    schema = load_schema(request.schema_out)
    if schema.id_field.name != request.roles.id:
        raise ImportFileError(
            f"{request.schema_out} says the id is {schema.id_field.name!r}, not "
            f"{request.roles.id!r}; fix one or choose another --schema-out"
        )
    if request.outcomes.column in schema.by_name:
        raise ImportFileError(f"the outcome column {request.outcomes.column!r} is in the schema")
    return schema


def _inferred_schema(request: ImportRequest, frame: pd.DataFrame) -> LeadSchema:
    """A schema for the file's lead columns: all but the outcome, close date and dropped ones."""
    not_fields = {request.outcomes.column, request.closed_at, *request.drop}
    lead_columns = [c for c in frame.columns if c not in not_fields]
    try:
        return infer_schema(
            frame[lead_columns],
            request.roles,
            name=request.path.stem,
            description=f"Inferred from {request.path.name} by leadloop import; review it.",
        )
    except ValidationError as exc:
        problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ImportFileError(f"cannot build a lead schema: {problems}") from None


def _row_order(request: ImportRequest, frame: pd.DataFrame) -> tuple[bool, str | None]:
    """Whether the file lists the newest rows first, and the id sequence that said so."""
    auto = request.row_order is RowOrder.AUTO and request.roles.time is None
    sequence = sequence_column(frame) if auto else None
    newest_first = request.row_order is RowOrder.NEWEST_FIRST or bool(sequence and sequence[1])
    return newest_first, sequence[0] if sequence else None
