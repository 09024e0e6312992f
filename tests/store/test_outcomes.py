"""The outcome vocabulary: which events close a lead, and which closing event counts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from store.outcomes import Outcome, latest_closing_outcomes, won_label

T = datetime(2026, 5, 1, tzinfo=UTC)


def events(*rows: tuple[str, str, int, int | None]) -> pd.DataFrame:
    """(lead, outcome, day, CRM sequence) rows as the store returns them."""
    return pd.DataFrame(
        [
            {
                "lead_id": lead,
                "event_id": f"{lead}-{outcome}-{day}-{sequence}",
                "outcome": outcome,
                "occurred_at": T + pd.Timedelta(days=day),
                "crm_sequence": sequence,
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


def test_equal_times_are_ordered_by_the_crms_sequence_first() -> None:
    latest = latest_closing_outcomes(events(("a", "lost", 3, 8), ("a", "won", 3, 5)))
    assert latest["outcome"].tolist() == [Outcome.LOST]


def test_equal_times_without_a_sequence_end_won_over_lost_over_disqualified() -> None:
    latest = latest_closing_outcomes(
        events(("a", "won", 3, None), ("a", "lost", 3, None), ("b", "disqualified", 3, None))
        .pipe(lambda e: pd.concat([e, events(("b", "lost", 3, None))]))
        .reset_index(drop=True)
    ).set_index("lead_id")["outcome"]
    assert latest.to_dict() == {"a": Outcome.WON, "b": Outcome.LOST}


@settings(deadline=None)
@given(
    history=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from([str(o) for o in Outcome]),
            st.integers(0, 2),
            st.one_of(st.none(), st.integers(0, 3)),
        ),
        min_size=1,
        max_size=12,
        unique_by=lambda row: row,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_final_state_does_not_depend_on_arrival_order(
    history: list[tuple[str, str, int, int | None]], seed: int
) -> None:
    """Ties in time included: the CRM's events, shuffled, leave every lead in one state."""
    in_order = events(*history)
    shuffled = in_order.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    final = latest_closing_outcomes(in_order).set_index("lead_id")["event_id"]
    assert latest_closing_outcomes(shuffled).set_index("lead_id")["event_id"].equals(final)


def test_won_label_marks_open_leads_as_unknown() -> None:
    labels = won_label(pd.Series(["won", "lost", "disqualified", None, "contacted"]))
    np.testing.assert_array_equal(labels.to_numpy(), [1.0, 0.0, 0.0, np.nan, np.nan])
