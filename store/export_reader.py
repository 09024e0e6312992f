"""Read a CRM export (CSV or Parquet) as text, keeping the line each row started on.

Nothing is typed here: every value stays text (None where empty), so the import can report a
bad value with its line. A CSV row with the wrong number of fields is set aside as malformed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


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
