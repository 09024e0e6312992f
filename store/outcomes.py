"""What the CRM tells leadloop about a lead after it is scored, and which of it closes the lead.

The one definition of the outcome vocabulary: the API, the import, training and the reports all
read it from here (the migrations keep their own frozen copies, as migrations must).
"""

from __future__ import annotations

from enum import StrEnum

import pandas as pd


class Outcome(StrEnum):
    WON = "won"
    LOST = "lost"
    DISQUALIFIED = "disqualified"
    #: Marketing hands the lead over to sales (the follow-up SLA starts).
    HANDED_OVER = "handed_over"
    #: Sales first contacts the lead.
    CONTACTED = "contacted"


#: Outcomes that close a lead; the model learns won (1) against lost and disqualified (0).
CLOSING_OUTCOMES = (Outcome.WON, Outcome.LOST, Outcome.DISQUALIFIED)
#: Steps of a lead's life before it closes, for the follow-up SLA.
LIFECYCLE_EVENTS = (Outcome.HANDED_OVER, Outcome.CONTACTED)


def latest_closing_outcomes(events: pd.DataFrame) -> pd.DataFrame:
    """One row per closed lead: its latest closing event (a re-opened lead is judged by its end).

    `events` has `lead_id`, `outcome`, `occurred_at` and `sequence` (the store's order, which
    breaks ties between equal times); other events are ignored.
    """
    closing = events[events["outcome"].isin(CLOSING_OUTCOMES)]
    ordered = closing.sort_values(["occurred_at", "sequence"], kind="stable")
    return ordered.drop_duplicates("lead_id", keep="last")


def won_label(outcomes: pd.Series) -> pd.Series:
    """1.0 for won, 0.0 for lost or disqualified, NaN for anything else (an open lead)."""
    closing = outcomes.isin(CLOSING_OUTCOMES)
    return (outcomes == Outcome.WON).astype(float).where(closing)
