"""Read a CRM export (CSV or Parquet) as text, keeping the line each row started on.

Nothing is typed here: every value stays text (None where empty), so the import can report a
bad value with its line. A CSV row with the wrong number of fields is set aside as malformed.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Malformed:
    """A row that cannot be imported, with the line it started on."""

    line: int
    reason: str


class ImportFileError(ValueError):
    """The file or the options cannot be imported as asked."""


#: Field separators exports use, as `--sep` takes them in a shell.
SEPARATORS = {",": "','", ";": "';'", "\t": "$'\\t'", "|": "'|'"}


def separator_hint(columns: list[str], sep: str) -> str:
    """A hint at `--sep` when the header read as one column that holds another separator
    (a semicolon-separated export read with commas); empty otherwise."""
    if len(columns) != 1:
        return ""
    header = columns[0]
    others = [s for s in SEPARATORS if s != sep and s in header]
    if not others:
        return ""
    likely = max(others, key=header.count)
    return f"; the header reads as one column: try --sep {SEPARATORS[likely]}"


@dataclass(frozen=True)
class RawTable:
    """A file's rows as text (None where empty), with the line number each row started on."""

    frame: pd.DataFrame
    lines: list[int]
    malformed: list[Malformed] = field(default_factory=list)
    #: The share of the file read once this table was (for progress bars).
    done: float = 1.0


def read_table(path: Path, sep: str = ",") -> RawTable:
    """Read a CSV (any separator, a trailing one tolerated) or a Parquet file as text."""
    return next(iter_table(path, sep, chunk_rows=None))


def iter_table(path: Path, sep: str = ",", chunk_rows: int | None = 10_000) -> Iterator[RawTable]:
    """The file's rows as text, `chunk_rows` at a time (all at once if None): a file larger than
    memory is read a chunk at a time. At least one chunk, perhaps empty; each carries the share
    of the file read so far in `done` (0 to 1)."""
    if not path.is_file():
        raise ImportFileError(f"no such file: {path}")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _parquet_chunks(path, chunk_rows)
    return _csv_chunks(path, sep, chunk_rows)


def _parquet_chunks(path: Path, chunk_rows: int | None) -> Iterator[RawTable]:
    try:
        file = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise ImportFileError(f"{path} is not a readable Parquet file: {exc}") from None
    total, first_line = file.metadata.num_rows, 2
    batches = file.iter_batches(batch_size=chunk_rows or max(total, 1))
    for batch in itertools.chain(_readable(batches, path), [None] if total == 0 else []):
        # Arrow's own types: a whole-number column with a gap stays whole numbers (numpy's
        # would turn the id 104 into "104.0", and only in the chunks that have a gap).
        frame = (batch or file.schema_arrow.empty_table()).to_pandas(types_mapper=pd.ArrowDtype)
        # A DataFrame's saved index comes back as a column of a batch: not a field of the export.
        frame = frame.drop(columns=[c for c in frame.columns if str(c).startswith("__index_")])
        text = frame.astype(object).where(frame.notna(), None)
        text = text.map(lambda v: v if v is None else str(v))
        lines = list(range(first_line, first_line + len(frame)))
        first_line += len(frame)
        yield RawTable(text.reset_index(drop=True), lines, done=(first_line - 2) / max(total, 1))


def _readable(batches: Iterator[pa.RecordBatch], path: Path) -> Iterator[pa.RecordBatch]:
    """`batches`, a damaged page of the file reported as the file's fault."""
    try:
        yield from batches
    except (OSError, ValueError) as exc:
        raise ImportFileError(f"{path} is not a readable Parquet file: {exc}") from None


def _csv_chunks(path: Path, sep: str, chunk_rows: int | None) -> Iterator[RawTable]:
    size = max(path.stat().st_size, 1)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=sep)
            header = next(reader, None)
            if not header:
                raise ImportFileError(f"{path} is empty")
            rows, lines, malformed, yielded = [], [], [], False
            line = reader.line_num + 1
            for record in reader:
                if len(record) == len(header):
                    rows.append([None if v.strip() == "" else v for v in record])
                    lines.append(line)
                elif any(v.strip() for v in record):
                    reason = f"{len(record)} fields where the header has {len(header)}"
                    malformed.append(Malformed(line, reason))
                line = reader.line_num + 1
                if chunk_rows and len(rows) >= chunk_rows:
                    done = handle.buffer.tell() / size
                    yield _csv_table(path, header, rows, lines, malformed, done)
                    rows, lines, malformed, yielded = [], [], [], True
            if rows or malformed or not yielded:
                yield _csv_table(path, header, rows, lines, malformed, 1.0)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path} is not UTF-8 text: {exc.reason}") from None
    except csv.Error as exc:
        raise ImportFileError(f"{path}: {exc}") from None


def _csv_table(
    path: Path,
    header: list[str],
    rows: list[list[str | None]],
    lines: list[int],
    malformed: list[Malformed],
    done: float,
) -> RawTable:
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    # Exports that end every line with the separator have an unnamed, empty last column.
    unnamed_empty = [c for c in frame.columns if not c.strip() and frame[c].isna().all()]
    frame = frame.drop(columns=unnamed_empty)
    if not frame.columns.is_unique or any(not c.strip() for c in frame.columns):
        raise ImportFileError(f"{path}: column names must be unique and not empty")
    return RawTable(frame, lines, malformed, done)
