"""Scoring a file of leads (CSV or Parquet), a chunk at a time: `leadloop score`.

Each row is validated by the same model as a lead posted to `POST /v1/scores`, so a file is
refused or scored exactly as the API would; a row that fails is reported with its line and the
field, and the others are scored. The file is read, scored and written a chunk at a time, so
memory holds two chunks whatever the file's size. The output is written beside its final path
and moved there only when every chunk is in: an interrupted run leaves no half file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from features.encoding import FeatureEncoder
from features.phrases import Phrasebook
from features.schema import FieldRole, LeadSchema
from features.table_validation import plain_rows
from features.validation import LEAD_ID_KEY, lead_model
from models.registry import LoadedScorer
from models.scorer import ScoreColumns
from serving.services import reason_documents
from store.export_reader import iter_table

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
    """Score every valid row of `source` into `destination`; `progress` gets the share read.

    A chunk is scored and written in a thread of its own while the next one is read and
    checked: LightGBM lets go of the GIL while it predicts, so reading the file (Python's csv
    module) no longer waits for the model. One chunk at most is in flight, so memory holds two.
    """
    checks = _Checks(schema, lead_model(schema), model.scorer.encoder)
    words = Phrasebook.of(schema, model.scorer.encoder)
    id_column = _id_column(schema)
    result = ScoredFile()
    with _output(destination, reasons) as out, ThreadPoolExecutor(1) as scoring:
        in_flight: Future[None] | None = None
        for table in iter_table(source, sep, chunk_rows):
            frame = table.frame.rename(columns={id_column: LEAD_ID_KEY})
            _check_columns(list(frame.columns), checks.lead_in, id_column)
            for bad in table.malformed:
                result.refuse(RefusedRow(bad.line, "", bad.reason))
            valid = _valid_leads(frame, table.lines, checks, reasons, result)
            if in_flight is not None:
                in_flight.result()
                in_flight = None
            if valid.ids:
                in_flight = scoring.submit(
                    lambda v=valid: out.write(_scored(model, v, words), model.version)
                )
            result.scored += len(valid.ids)
            progress(table.done)
        if in_flight is not None:
            in_flight.result()
    return result


def _id_column(schema: LeadSchema) -> str:
    """The file's id column: the schema's id field, as a CRM export names it (or `lead_id`)."""
    id_field = schema.field_with_role(FieldRole.ID)
    return id_field.name if id_field else LEAD_ID_KEY


def _check_columns(columns: list[str], lead_in: type[BaseModel], id_column: str) -> None:
    """`columns` (the id column renamed `lead_id`) are the lead model's, each once (the reader
    refuses a header that names a column twice: only the renaming can)."""
    if len(set(columns)) < len(columns):
        raise BatchFileError(
            f"the id column appears twice: {id_column!r} (the schema's id field) and "
            f"{LEAD_ID_KEY!r}; keep one of them"
        )
    unknown = [c for c in columns if c not in lead_in.model_fields]
    if unknown:
        raise BatchFileError(
            f"columns the lead schema does not have: {', '.join(map(repr, unknown))} (the API "
            "refuses them too; drop them, or score with the schema they belong to)"
        )
    if LEAD_ID_KEY not in columns:
        raise BatchFileError(f"no {LEAD_ID_KEY!r} column (or the schema's id field)")


@dataclass(frozen=True)
class _Checks:
    """What a file's rows are checked and encoded with."""

    schema: LeadSchema
    #: The API's model of one lead (`POST /v1/scores` validates with the same).
    lead_in: type[BaseModel]
    encoder: FeatureEncoder


@dataclass(frozen=True)
class _ValidLeads:
    """A chunk's valid rows in file order: their ids, and either their encoded rows (a score
    alone) or their typed values (with reasons, which show a lead's value as the API does)."""

    ids: list[str]
    rows: np.ndarray | None
    leads: list[dict[str, Any]] | None


def _valid_leads(
    frame: pd.DataFrame, lines: Sequence[int], checks: _Checks, reasons: bool, result: ScoredFile
) -> _ValidLeads:
    """Plain rows are checked and encoded a column at a time; the others (every row when
    reasons are asked) go through the API's lead model one by one, refused with their line."""
    if reasons:
        leads = list(_typed(frame, np.arange(len(frame)), lines, checks, result).values())
        return _ValidLeads([lead[LEAD_ID_KEY] for lead in leads], None, leads)
    plain = plain_rows(checks.schema, frame, datetime.now(UTC))
    typed = _typed(frame, np.flatnonzero(~plain), lines, checks, result)
    others = np.fromiter(typed, dtype=np.intp, count=len(typed))
    kept = plain.copy()
    kept[others] = True
    position = np.cumsum(kept) - 1
    rows = np.empty((int(kept.sum()), len(checks.encoder.columns)), dtype=np.float64)
    rows[position[plain]] = checks.encoder.encode_table(frame[plain])
    rows[position[others]] = checks.encoder.encode(list(typed.values()))
    ids = frame[LEAD_ID_KEY].to_numpy(dtype=object, copy=True)
    ids[others] = [lead[LEAD_ID_KEY] for lead in typed.values()]  # the lead model strips them
    return _ValidLeads(list(ids[kept]), rows, None)


def _typed(
    frame: pd.DataFrame,
    positions: np.ndarray,
    lines: Sequence[int],
    checks: _Checks,
    result: ScoredFile,
) -> dict[int, dict[str, Any]]:
    """The rows at `positions` that the lead model accepts, typed by it, by position; each
    refused row is recorded in `result` with its line and first problem."""
    typed: dict[int, dict[str, Any]] = {}
    records = frame.iloc[positions].to_dict(orient="records")
    for i, record in zip(positions.tolist(), records, strict=True):
        try:
            typed[i] = checks.lead_in.model_validate(record).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            result.refuse(RefusedRow(lines[i], where, first["msg"]))
    return typed


@dataclass(frozen=True)
class _Scored:
    ids: list[str]
    scores: ScoreColumns
    #: Each lead's reasons as JSON, when asked.
    reasons: list[str] | None


def _scored(model: LoadedScorer, valid: _ValidLeads, words: Phrasebook) -> _Scored:
    scorer = model.scorer
    if valid.leads is None:
        assert valid.rows is not None
        return _Scored(valid.ids, scorer.score_rows(valid.rows), None)
    scored = scorer.score(valid.leads, reasons=True)
    columns = ScoreColumns(
        np.array([one.probability for one in scored]),
        np.array([one.score for one in scored], dtype=np.int64),
        np.array([one.grade for one in scored]),
    )
    documents = [reason_documents(one, words) for one in scored]
    return _Scored(valid.ids, columns, [json.dumps(d, ensure_ascii=False) for d in documents])


class _Output(Protocol):
    def write(self, scored: _Scored, version: str) -> None: ...


def _columns(scored: _Scored, version: str) -> list[Sequence[Any]]:
    """The output's columns, in `COLUMNS` order (then reasons, when asked)."""
    columns: list[Sequence[Any]] = [
        scored.ids,
        scored.scores.probability.tolist(),
        scored.scores.score.tolist(),
        scored.scores.grade.tolist(),
        [version] * len(scored.ids),
    ]
    return columns + ([scored.reasons] if scored.reasons is not None else [])


COLUMNS = ["lead_id", "probability", "score", "grade", "model_version"]


class _CsvOutput:
    def __init__(self, handle: Any, reasons: bool) -> None:
        self.writer, self.reasons = csv.writer(handle), reasons
        self.writer.writerow(COLUMNS + (["reasons"] if reasons else []))

    def write(self, scored: _Scored, version: str) -> None:
        self.writer.writerows(zip(*_columns(scored, version), strict=True))


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

    def write(self, scored: _Scored, version: str) -> None:
        columns = [pa.array(c) for c in _columns(scored, version)]
        self.writer.write_table(pa.Table.from_arrays(columns, schema=self.schema))


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
