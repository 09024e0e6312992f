"""Scoring a file of leads (CSV or Parquet), a chunk at a time: `leadloop score`.

Each row is validated by the same model as a lead posted to `POST /v1/scores`, so a file is
refused or scored exactly as the API would; a row that fails is reported with its line and the
field, and the others are scored. The file is read, scored and written a chunk at a time, so
memory holds one chunk whatever the file's size. The output is written beside its final path
and moved there only when every chunk is in: an interrupted run leaves no half file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from features.schema import FieldRole, LeadSchema
from features.validation import LEAD_ID_KEY, lead_model
from models.registry import LoadedScorer
from models.scorer import LeadScore
from store.export_reader import iter_table
from store.records import json_value

#: Refused rows kept with their reasons (all are counted).
MAX_LISTED = 1_000
PARQUET_SUFFIXES = (".parquet", ".pq")


class BatchFileError(ValueError):
    """The file cannot be scored at all (its columns, or where it should be written)."""


@dataclass(frozen=True)
class RefusedRow:
    #: The row's line in a CSV file (the header is line 1); in Parquet, its row number + 1.
    line: int
    field: str
    message: str


@dataclass
class ScoredFile:
    """What a run scored and refused."""

    scored: int = 0
    refused_rows: int = 0
    #: The first `MAX_LISTED` refused rows, each with its first problem.
    refused: list[RefusedRow] = field(default_factory=list)

    def refuse(self, row: RefusedRow) -> None:
        self.refused_rows += 1
        if len(self.refused) < MAX_LISTED:
            self.refused.append(row)


def score_file(
    model: LoadedScorer,
    schema: LeadSchema,
    source: Path,
    destination: Path,
    reasons: bool,
    sep: str = ",",
    chunk_rows: int = 10_000,
    progress: Callable[[float], None] = lambda done: None,
) -> ScoredFile:
    """Score every valid row of `source` into `destination`; `progress` gets the share read."""
    lead_in = lead_model(schema)
    id_column = _id_column(schema)
    result = ScoredFile()
    with _output(destination, reasons) as out:
        for table in iter_table(source, sep, chunk_rows):
            frame = table.frame.rename(columns={id_column: LEAD_ID_KEY})
            _check_columns(list(frame.columns), lead_in)
            for bad in table.malformed:
                result.refuse(RefusedRow(bad.line, "", bad.reason))
            leads = _valid_leads(frame.to_dict(orient="records"), table.lines, lead_in, result)
            out.write(leads, model.scorer.score(leads, reasons) if leads else [], model.version)
            result.scored += len(leads)
            progress(table.done)
    return result


def _id_column(schema: LeadSchema) -> str:
    """The file's id column: the schema's id field, as a CRM export names it (or `lead_id`)."""
    id_field = schema.field_with_role(FieldRole.ID)
    return id_field.name if id_field else LEAD_ID_KEY


def _check_columns(columns: list[str], lead_in: type[BaseModel]) -> None:
    unknown = [c for c in columns if c not in lead_in.model_fields]
    if unknown:
        raise BatchFileError(
            f"columns the lead schema does not have: {', '.join(map(repr, unknown))} (the API "
            "refuses them too; drop them, or score with the schema they belong to)"
        )
    if LEAD_ID_KEY not in columns:
        raise BatchFileError(f"no {LEAD_ID_KEY!r} column (or the schema's id field)")


def _valid_leads(
    records: Sequence[dict[str, Any]],
    lines: Sequence[int],
    lead_in: type[BaseModel],
    result: ScoredFile,
) -> list[dict[str, Any]]:
    leads = []
    for line, record in zip(lines, records, strict=True):
        try:
            leads.append(lead_in.model_validate(record).model_dump())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            result.refuse(RefusedRow(line, where, first["msg"]))
    return leads


class _Output(Protocol):
    def write(self, leads: list[dict[str, Any]], scores: list[LeadScore], version: str) -> None: ...


def _rows(
    leads: list[dict[str, Any]], scores: list[LeadScore], version: str, reasons: bool
) -> list[list[Any]]:
    return [
        [lead[LEAD_ID_KEY], one.probability, one.score, one.grade, version]
        + ([json.dumps(_reasons(one), ensure_ascii=False)] if reasons else [])
        for lead, one in zip(leads, scores, strict=True)
    ]


def _reasons(one: LeadScore) -> list[dict[str, Any]]:
    return [
        {"field": r.field, "value": json_value(r.value), "impact": r.impact}
        for r in one.reasons or []
    ]


COLUMNS = ["lead_id", "probability", "score", "grade", "model_version"]


class _CsvOutput:
    def __init__(self, handle: Any, reasons: bool) -> None:
        self.writer, self.reasons = csv.writer(handle), reasons
        self.writer.writerow(COLUMNS + (["reasons"] if reasons else []))

    def write(self, leads: list[dict[str, Any]], scores: list[LeadScore], version: str) -> None:
        self.writer.writerows(_rows(leads, scores, version, self.reasons))


class _ParquetOutput:
    def __init__(self, path: Path, reasons: bool) -> None:
        fields = [
            ("lead_id", pa.string()),
            ("probability", pa.float64()),
            ("score", pa.int64()),
            ("grade", pa.string()),
            ("model_version", pa.string()),
        ] + ([("reasons", pa.string())] if reasons else [])
        self.schema, self.reasons = pa.schema(fields), reasons
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, leads: list[dict[str, Any]], scores: list[LeadScore], version: str) -> None:
        columns = list(zip(*_rows(leads, scores, version, self.reasons), strict=True))
        if columns:
            self.writer.write_table(
                pa.Table.from_arrays(list(map(list, columns)), schema=self.schema)
            )


@contextmanager
def _output(destination: Path, reasons: bool) -> Iterator[_Output]:
    """The output file: written under a temporary name, moved into place once complete."""
    if not destination.parent.is_dir():
        raise BatchFileError(f"the folder of {destination} does not exist")
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        if destination.suffix.lower() in PARQUET_SUFFIXES:
            parquet = _ParquetOutput(partial, reasons)
            try:
                yield parquet
            finally:
                parquet.writer.close()
        else:
            with partial.open("w", newline="", encoding="utf-8") as handle:
                yield _CsvOutput(handle, reasons)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, destination)
