"""How long a lead's events take to arrive, measured on the store's own leads (pure).

A lead created last week that has not won says little: wins take weeks. To use young leads at
all, the change detection needs, for a lead of a given age, the chance that its event (a win,
a disqualification, a hand-over...) would already have arrived if it is to happen, and the
chance that the lead would already have ended otherwise (closed without it). Both come from the
store's history as cumulative incidences of two competing ends, by age in days: the
Aalen-Johansen estimator, in which a lead with neither yet is censored at its age (it may end
either way later), so young leads count without biasing the delays short. Their values at the
oldest well-observed age are the eventual shares; each divided by its share is the distribution
of the delay given that end. Leads that never end are allowed: the distributions then do not
reach 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: The oldest age trusted is the one at which at least this many leads were still followed:
#: beyond it a handful of old leads would decide the tail.
MIN_AT_RISK = 30
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class OutcomeTiming:
    """The share of eventual events (and other ends) that have arrived by each age in days."""

    #: P(event by age d | the event happens), d = 0 .. len - 1 (1 at the last age).
    event_by_age: np.ndarray
    #: P(ended otherwise by age d | the event does not happen); below 1 where some leads
    #: never end.
    other_by_age: np.ndarray
    #: The eventual share of leads with the event, among those it was measured on.
    rate: float

    def at(self, ages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both distributions at `ages` (days, any real >= 0; the last day holds beyond).
        Day d's value is the share arrived by the end of day d: an age is read between the day
        before and it (a lead an hour old has not had the whole first day of hand-overs)."""
        return _at_age(self.event_by_age, ages), _at_age(self.other_by_age, ages)


def _at_age(by_day: np.ndarray, ages: np.ndarray) -> np.ndarray:
    ends = np.arange(len(by_day) + 1)
    return np.interp(ages, ends, np.concatenate([[0.0], by_day]))


def _read(by_age: np.ndarray, whole_days: np.ndarray) -> np.ndarray:
    return by_age[np.clip(whole_days, 0, len(by_age) - 1)]


#: A lead's state at a report's date: the event arrived, it ended otherwise, or neither yet.
EVENT, OTHER, NEITHER = 1, 2, 0


def lead_states(
    created: pd.Series, event_at: pd.Series, other_at: pd.Series, as_of: pd.Timestamp
) -> tuple[np.ndarray, np.ndarray]:
    """Each lead's state at `as_of` (`EVENT`, `OTHER`, `NEITHER`) and its age in days then, or
    when it reached that state (NaN where that is before the lead was created: a CRM's dates
    can be wrong, and such a delay says nothing of how long outcomes take). `event_at`,
    `other_at`: the times, NaT where none (by `as_of`)."""
    has_event = event_at.notna().to_numpy()
    has_other = other_at.notna().to_numpy() & ~has_event
    end = event_at.where(has_event, other_at.where(has_other, as_of))
    days = ((end - created) / DAY).to_numpy(float)
    state = np.where(has_event, EVENT, np.where(has_other, OTHER, NEITHER))
    return state, np.where(days >= 0, days, np.nan)


def outcome_timing(state: np.ndarray, days: np.ndarray) -> OutcomeTiming | None:
    """Aalen-Johansen cumulative incidences of the event and of the other end, by whole days
    (ties: a lead ending on day d was followed on day d; one with neither yet is followed up to
    its age; a lead without a valid delay is left out). None without a single event or a day
    well observed."""
    valid = np.isfinite(days)
    state, whole = state[valid], np.floor(days[valid]).astype(int)
    if len(whole) == 0 or not (state == EVENT).any():
        return None
    length = int(whole.max()) + 1
    at_risk = np.cumsum(np.bincount(whole, minlength=length)[::-1])[::-1]
    trusted = int(np.searchsorted(-at_risk, -MIN_AT_RISK, side="right"))
    if trusted == 0:
        return None
    at_risk = at_risk[:trusted].astype(float)
    events = np.bincount(whole[state == EVENT], minlength=length)[:trusted] / at_risk
    others = np.bincount(whole[state == OTHER], minlength=length)[:trusted] / at_risk
    still_followed = np.cumprod(1.0 - events - others)
    before = np.concatenate([[1.0], still_followed[:-1]])
    event_by = np.cumsum(before * events)
    other_by = np.cumsum(before * others)
    rate = float(event_by[-1])
    if rate <= 0.0 or rate >= 1.0:
        return None
    return OutcomeTiming(event_by / rate, np.minimum(other_by / (1.0 - rate), 1.0), rate)


def event_delays(state: np.ndarray, days: np.ndarray, ages: np.ndarray) -> np.ndarray | None:
    """P(event by age d | the event happens), d = 0, 1, ..., from the delays of the events seen
    alone: the Lynden-Bell estimator for right-truncated delays (a lead of age t shows only
    delays up to t). Unlike the cumulative incidence above it does not depend on how many leads
    have the event, so a source whose rate fell recently does not seem to have slower events,
    which would hide the fall. `days`: each lead's delay (for those with the event); `ages`: each
    lead's age at the report's date. None without a well-observed day."""
    seen = (state == EVENT) & np.isfinite(days)
    delay = np.floor(days[seen]).astype(int)
    age = np.maximum(np.floor(ages[seen]).astype(int), delay)
    if len(delay) == 0:
        return None
    length = int(delay.max()) + 1
    shorter = np.cumsum(np.bincount(delay, minlength=length))  # delays <= d
    too_young = np.concatenate([[0], np.cumsum(np.bincount(age, minlength=length))[: length - 1]])
    at_risk = (shorter - too_young[:length]).astype(float)  # delays <= d <= age
    # Trusted up to the first day, past the most followed one, with too few leads followed: a
    # handful of leads with absurd dates (1970) must not stretch the estimate across a gap.
    peak = int(np.argmax(at_risk))
    if at_risk[peak] < MIN_AT_RISK:
        return None
    thin = np.flatnonzero(at_risk[peak:] < MIN_AT_RISK)
    last = peak + int(thin[0]) if len(thin) else length
    count, risk = np.bincount(delay, minlength=length)[:last], at_risk[:last]
    reverse_hazard = np.divide(count, risk, out=np.zeros(last), where=risk > 0)
    # F(d) = product over s > d of (1 - reverse hazard at s), with F(last day) = 1.
    beyond = np.cumprod((1.0 - reverse_hazard)[::-1])[::-1]
    return np.concatenate([beyond[1:], [1.0]])


def blended(own: np.ndarray | None, everyone: np.ndarray, weight: float) -> np.ndarray:
    """`weight` of a source's own distribution by age and the rest of every source's (the
    longer array's last value holds beyond the shorter's end)."""
    if own is None or weight <= 0.0:
        return everyone
    length = max(len(own), len(everyone))
    ages = np.arange(length)
    return weight * _read(own, ages) + (1.0 - weight) * _read(everyone, ages)
