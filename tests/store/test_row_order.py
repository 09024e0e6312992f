"""Time from row order: an id sequence tells which end of a file is the newest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from store.row_order import sequence_column, times_from_row_order

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        (["7", "8", "10", "15"], ("id", False)),
        (["15", "10", "8", "7"], ("id", True)),
        (["1", "3", "2", "4"], None),  # shuffled: no order to read
        (["1", "2", "2", "4"], None),  # repeated: not an auto-increment id
        (["1.5", "2.5", "3.5", "4.5"], None),  # not integers
        (["1", "2", None, "4"], None),
        (["1", "2"], None),  # too few rows to tell
    ],
)
def test_sequence_column(numbers: list[str | None], expected: tuple[str, bool] | None) -> None:
    frame = pd.DataFrame({"name": list("abcd")[: len(numbers)], "id": numbers}, dtype=object)
    assert sequence_column(frame) == expected


@pytest.mark.parametrize("newest_first", [False, True])
def test_rows_are_a_second_apart_and_end_before_now(newest_first: bool) -> None:
    times = times_from_row_order(3, NOW, newest_first)
    if newest_first:
        times.reverse()
    assert times == [NOW - timedelta(seconds=s) for s in (3, 2, 1)]
