"""Time-ordered splits: the holdout is the newest leads, with no moment cut in two."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from training.dataset import AS_OF, LABEL, OCCURRED_AT
from training.split import NotEnoughDataError, time_split

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rows(days: list[float], labels: list[int]) -> pd.DataFrame:
    as_of = [T0 + timedelta(days=d) for d in days]
    return pd.DataFrame(
        {
            "lead_id": [f"l{i:03d}" for i in range(len(days))],
            AS_OF: as_of,
            OCCURRED_AT: [t + timedelta(days=30) for t in as_of],
            LABEL: labels,
        }
    )


def test_newest_fraction_is_held_out_and_older_rows_come_first() -> None:
    frame = rows(days=list(range(100))[::-1], labels=[i % 2 for i in range(100)])
    split = time_split(frame, 0.2)
    assert len(split.newer) == 20 and len(split.older) == 80
    assert split.older[AS_OF].max() < split.cutoff == split.newer[AS_OF].min()
    assert split.older[AS_OF].is_monotonic_increasing
    assert set(split.older["lead_id"]).isdisjoint(split.newer["lead_id"])


def test_leads_sharing_the_cutoff_time_stay_together() -> None:
    frame = rows(days=[0, 1, 2, 3, 3, 3, 4, 5], labels=[0, 1, 0, 1, 0, 1, 0, 1])
    split = time_split(frame, 0.5)
    assert sorted(split.newer[AS_OF].dt.day) == [4, 4, 4, 5, 6]
    assert len(split.older) == 3


def test_a_part_without_both_classes_is_refused() -> None:
    frame = rows(days=list(range(10)), labels=[0, 1] * 3 + [0] * 4)
    with pytest.raises(NotEnoughDataError, match="newer part"):
        time_split(frame, 0.3)


def test_too_few_leads_are_refused() -> None:
    with pytest.raises(NotEnoughDataError, match="too few"):
        time_split(rows(days=[0], labels=[1]), 0.2)
    with pytest.raises(NotEnoughDataError, match="too few"):
        time_split(rows(days=[], labels=[]), 0.2)
