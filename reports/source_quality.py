"""Source quality: which lead sources convert, month by month (pure).

Recent leads have not had time to close, and the fast outcomes (disqualifications) arrive
first: a plain monthly win rate always sags at the end. The monthly table therefore marks a
month mature once its leads are `horizon` old, the time within which three quarters of the won
leads closed; the funnel plan counts wins within that horizon. Which source stopped converting,
and since when, is not read from this table but from every lead's outcome so far
(`reports.source_signals`), which knows it months sooner.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from store.outcomes import Outcome

HORIZON_QUANTILE = 0.75
MIN_HORIZON = timedelta(days=7)
MAX_HORIZON = timedelta(days=180)
DEFAULT_HORIZON = timedelta(days=90)


def outcome_horizon(leads: pd.DataFrame, as_of: pd.Timestamp) -> timedelta:
    """The time within which three quarters of won leads were won (bounded).

    Measured on leads created at least `MAX_HORIZON` before `as_of`, whose slow wins have had
    time to arrive: recent leads only show the fast ones and would shorten it.
    """
    won = leads[leads["outcome"] == Outcome.WON]
    settled = won[won["created_at"] <= as_of - MAX_HORIZON]
    won = settled if len(settled) >= 20 else won
    if len(won) < 20:
        return DEFAULT_HORIZON
    delay = (won["closed_at"] - won["created_at"]).quantile(HORIZON_QUANTILE)
    return min(max(delay.to_pytimedelta(), MIN_HORIZON), MAX_HORIZON)


def won_within(leads: pd.DataFrame, horizon: timedelta) -> pd.Series:
    return (leads["outcome"] == Outcome.WON) & (leads["closed_at"] - leads["created_at"] <= horizon)


def predicted_vs_actual(table: pd.DataFrame) -> list[dict]:
    """Per source over its mature months: mean predicted probability and actual win rate."""
    ripe = table[table["mature"]]
    totals = ripe.groupby("source").agg(
        leads=("leads", "sum"), won=("won", "sum"), closed=("closed", "sum")
    )
    weighted = (ripe["predicted"] * ripe["leads"]).groupby(ripe["source"]).sum()
    return [
        {
            "source": str(source),
            "predicted": float(weighted[source] / row["leads"]) if row["leads"] else None,
            "win_rate": float(row["won"] / row["closed"]) if row["closed"] else None,
        }
        for source, row in totals.iterrows()
    ]


def monthly(leads: pd.DataFrame, as_of: pd.Timestamp, horizon: timedelta) -> pd.DataFrame:
    """Per source and month of creation: outcomes so far, rates, and whether it is mature."""
    frame = leads.assign(
        month=leads["created_at"].dt.tz_localize(None).dt.to_period("M"),
        won=leads["outcome"] == Outcome.WON,
        lost=leads["outcome"] == Outcome.LOST,
        disqualified=leads["outcome"] == Outcome.DISQUALIFIED,
        closed=leads["outcome"].notna(),
    )
    table = frame.groupby(["source", "month"]).agg(
        leads=("lead_id", "size"),
        won=("won", "sum"),
        lost=("lost", "sum"),
        disqualified=("disqualified", "sum"),
        closed=("closed", "sum"),
        predicted=("probability", "mean"),
    )
    closed = table["closed"].where(table["closed"] > 0)
    table["win_rate"] = table["won"] / closed
    table["disqualification_rate"] = table["disqualified"] / closed
    month_end = table.index.get_level_values("month").to_timestamp(how="end").tz_localize("UTC")
    table["mature"] = month_end + horizon <= as_of
    return table.reset_index()
