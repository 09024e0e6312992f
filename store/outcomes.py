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


#: Which of a lead's events at the same moment comes last, whatever order they arrived in: the
#: one the CRM numbered last (`crm_sequence`, when it sends one); else won over lost over
#: disqualified (a deal marked won in the second it was marked lost was won); else the larger
#: `event_id`. The final state is then the same for every arrival order.
TIE_RANK = {
    Outcome.HANDED_OVER: 0,
    Outcome.CONTACTED: 1,
    Outcome.DISQUALIFIED: 2,
    Outcome.LOST: 3,
    Outcome.WON: 4,
}
#: The columns an events frame is ordered by, oldest first (`_rank` is `TIE_RANK`'s).
EVENT_ORDER = ["occurred_at", "crm_sequence", "_rank", "event_id"]


def in_event_order(events: pd.DataFrame) -> pd.DataFrame:
    """`events` (`occurred_at`, `crm_sequence`, `outcome`, `event_id`) oldest first, ties
    broken by `TIE_RANK`'s rule; an event without a CRM sequence comes before one with."""
    ranked = events.assign(_rank=events["outcome"].map(TIE_RANK))
    ordered = ranked.sort_values(EVENT_ORDER, na_position="first", kind="stable")
    return ordered.drop(columns="_rank")


def latest_closing_outcomes(events: pd.DataFrame) -> pd.DataFrame:
    """One row per closed lead: its latest closing event (a re-opened lead is judged by its end);
    other events are ignored."""
    closing = events[events["outcome"].isin(CLOSING_OUTCOMES)]
    return in_event_order(closing).drop_duplicates("lead_id", keep="last")


def won_label(outcomes: pd.Series) -> pd.Series:
    """1.0 for won, 0.0 for lost or disqualified, NaN for anything else (an open lead)."""
    closing = outcomes.isin(CLOSING_OUTCOMES)
    return (outcomes == Outcome.WON).astype(float).where(closing)
