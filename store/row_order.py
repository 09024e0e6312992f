"""Time from row order, for exports without a time column.

CRMs export leads in the order they were created, so a file's row order is its time order; an
auto-increment id column tells which end is the newest. Rows are then dated a second apart,
ending just before the import.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np
import pandas as pd

#: Rank correlation with the row order above which a column of ids counts as a sequence.
SEQUENCE_RHO = 0.99


class RowOrder(StrEnum):
    """How to read time from a file without a time column."""

    AUTO = "auto"  # from an id sequence when there is one, else oldest first
    OLDEST_FIRST = "oldest-first"
    NEWEST_FIRST = "newest-first"


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


def times_from_row_order(n_rows: int, now: datetime, newest_first: bool) -> list[datetime]:
    """Each row's time from its place in the file: a second apart, the newest 1 s before `now`."""
    return [now - timedelta(seconds=i + 1 if newest_first else n_rows - i) for i in range(n_rows)]
