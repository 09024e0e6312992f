"""The outcome vocabulary: which events close a lead, and which closing event counts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from store.outcomes import Outcome, latest_closing_outcomes, won_label

T = datetime(2026, 5, 1, tzinfo=UTC)


def events(*rows: tuple[str, str, int, int]) -> pd.DataFrame:
    """(lead, outcome, day, sequence) rows as the store returns them."""
    return pd.DataFrame(
        [
            {
                "lead_id": lead,
                "outcome": outcome,
                "occurred_at": T + pd.Timedelta(days=day),
                "sequence": sequence,
            }
            for lead, outcome, day, sequence in rows
        ]
    )


def test_a_reopened_lead_is_judged_by_its_latest_closing_event() -> None:
    latest = latest_closing_outcomes(
        events(("a", "lost", 1, 1), ("a", "won", 9, 2), ("b", "won", 2, 3), ("b", "lost", 5, 4))
    ).set_index("lead_id")["outcome"]
    assert latest.to_dict() == {"a": Outcome.WON, "b": Outcome.LOST}


def test_lifecycle_events_never_close_a_lead() -> None:
    latest = latest_closing_outcomes(
        events(("a", "handed_over", 1, 1), ("a", "contacted", 2, 2), ("b", "lost", 1, 3))
    )
    assert latest["lead_id"].tolist() == ["b"]


def test_equal_times_are_ordered_by_the_store_not_by_the_rows() -> None:
    """Two outcomes at the same moment: the one stored last wins, whatever the row order."""
    latest = latest_closing_outcomes(events(("a", "won", 3, 8), ("a", "lost", 3, 5)))
    assert latest["outcome"].tolist() == [Outcome.WON]


def test_won_label_marks_open_leads_as_unknown() -> None:
    labels = won_label(pd.Series(["won", "lost", "disqualified", None, "contacted"]))
    np.testing.assert_array_equal(labels.to_numpy(), [1.0, 0.0, 0.0, np.nan, np.nan])
