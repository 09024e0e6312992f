"""The signals watched per source, and each source's most likely change of each (pure).

The win rate is what a marketer asks about; it is judged relative to the champion's
probabilities and raises the `source_stopped_converting` alert. The leading indicators arrive
sooner and are shown apart, without alerts of their own: disqualifications (a fit signal, days
after creation), hand-overs and first contacts (how far the source's leads get down the
funnel). Every signal is tested the same way (`reports.rate_change`), with its own delays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import logit

from reports.outcome_timing import (
    EVENT,
    OTHER,
    OutcomeTiming,
    blended,
    event_delays,
    lead_states,
    outcome_timing,
)
from reports.rate_change import ALPHA, Direction, RateChange, SourceLeads, most_likely_change
from store.outcomes import CLOSING_OUTCOMES, Outcome

#: A source's own delays weigh n / (n + PRIOR_ENDS) against every source's, n its own ends.
PRIOR_ENDS = 30


@dataclass(frozen=True)
class Signal:
    event: str  # a closing outcome, or a lifecycle column of the report's leads
    direction: Direction  # which way is bad news
    label: str  # in plain words, for the pages
    #: Whether a lead's chance starts from the champion's probability (wins only).
    from_champion: bool = False


WIN_RATE = Signal(Outcome.WON, "drop", "win rate", from_champion=True)
LEADING_INDICATORS = (
    Signal(Outcome.DISQUALIFIED, "rise", "disqualification rate"),
    Signal(Outcome.HANDED_OVER, "drop", "hand-over rate"),
    Signal(Outcome.CONTACTED, "drop", "contact rate"),
)


def event_times(leads: pd.DataFrame, signal: Signal) -> tuple[pd.Series, pd.Series]:
    """When each lead had the signal's event, and when it ended without it (NaT where not).
    `leads`: the report's lead table (outcome, closed_at, handed_over, contacted)."""
    closed = leads["closed_at"].where(leads["outcome"].notna())
    if signal.event in CLOSING_OUTCOMES:
        has = leads["outcome"] == signal.event
        return closed.where(has), closed.where(~has)
    event_at = leads[signal.event]
    return event_at, closed.where(event_at.isna())


def source_changes(
    leads: pd.DataFrame, as_of: pd.Timestamp, signal: Signal, false_alarm_rate: float = ALPHA
) -> list[RateChange]:
    """The most likely change of `signal` in each source (named or not), strongest first.
    `leads`: the report's lead table as known at `as_of`; `probability` NaN without a
    champion (the win rate is then each source's own)."""
    if leads.empty:
        return []
    state, days = lead_states(leads["created_at"], *event_times(leads, signal), as_of)
    ages = ((as_of - leads["created_at"]) / pd.Timedelta(days=1)).to_numpy()
    everyone = outcome_timing(state, days)
    delays = event_delays(state, days, ages)
    if everyone is None or delays is None:
        return []
    everyone = replace(everyone, event_by_age=delays)
    baseline = _baselines(leads, signal)
    created = leads["created_at"].dt.tz_convert(None).to_numpy()
    found = []
    for source, index in leads.groupby("source").indices.items():
        rows = index[np.argsort(created[index], kind="stable")]
        timing = _timing(state[rows], days[rows], ages[rows], everyone)
        event_by, other_by = timing.at(ages[rows])
        part = SourceLeads(
            created[rows].astype("datetime64[D]"), baseline[rows], state[rows], event_by, other_by
        )
        change = most_likely_change(
            str(source), signal.event, signal.direction, part, math.log(1 / false_alarm_rate)
        )
        if change is not None:
            found.append(change)
    return sorted(found, key=lambda c: -c.evidence)


def _baselines(leads: pd.DataFrame, signal: Signal) -> np.ndarray:
    """Each lead's log-odds before its source's shift: the champion's for wins (a lead it did
    not score takes its source's mean), else 0 (the source's own rate)."""
    probability = leads["probability"].to_numpy(float)
    if not signal.from_champion or not np.isfinite(probability).any():
        return np.zeros(len(leads))
    odds = pd.Series(logit(np.clip(probability, 1e-6, 1 - 1e-6)), index=leads.index)
    by_source = odds.groupby(leads["source"]).transform("mean")
    return odds.fillna(by_source).fillna(odds.mean()).to_numpy()


def _timing(
    state: np.ndarray, days: np.ndarray, ages: np.ndarray, everyone: OutcomeTiming
) -> OutcomeTiming:
    """A source's own delays, shrunk towards every source's by how few of each end it has.
    Sources differ (an enterprise channel closes slower, a channel of poor fits is disqualified
    within days), and every source's delays would make a slow source's young leads look short of
    wins, or a fast one's early losses look like a drop; a handful of a source's own would be
    noise."""
    own = outcome_timing(state, days)
    events, others = int((state == EVENT).sum()), int((state == OTHER).sum())
    return replace(
        everyone,
        event_by_age=blended(
            event_delays(state, days, ages), everyone.event_by_age, _weight(events)
        ),
        other_by_age=blended(
            own.other_by_age if own else None, everyone.other_by_age, _weight(others)
        ),
    )


def _weight(count: int) -> float:
    return count / (count + PRIOR_ENDS)
