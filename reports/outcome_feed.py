"""Whether outcomes stopped arriving: a feed that went quiet is missing data, not a collapse.

When the CRM stops posting outcomes (an integration broken, an export not run), every source
seems to stop converting: its leads stay open. Before judging win rates, the reports ask whether
the silence since the last outcome is longer than this store's own feed makes likely. Over the
`WINDOW` before its last outcome a feed (all sources, or one source) brought n outcomes: at
that rate, with outcomes arriving as a Poisson process, a silence of `g` days has probability
exp(-rate x g). The feed is stalled when that probability falls below `ALPHA` and the silence is
also longer than any gap the window itself held (CRMs post in batches: a feed that comes once a
week is not stalled after six days). A source is judged only while it has open leads, and only
with `MIN_OUTCOMES` in the window; its silence runs to the last outcome of any source (while the
others went on), so a source that went quiet before every source did is named too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

#: How unlikely a silence must be, at the feed's own rate, to be called a stall.
ALPHA = 1e-6
#: The history a feed's usual pace is measured on, before its last outcome.
WINDOW = timedelta(days=90)
#: Fewest outcomes in the window to judge a feed at all.
MIN_OUTCOMES = 10
#: What a stall of every source at once is about.
ALL_SOURCES = "all sources"


@dataclass(frozen=True)
class FeedStall:
    subject: str  # a source, or ALL_SOURCES
    last_outcome: pd.Timestamp
    silent_days: float
    #: The longest silence the feed's pace makes plausible (the larger of the Poisson bound
    #: and the longest gap of the window).
    usual_days: float
    outcomes_in_window: int


def stalled_feeds(
    events: pd.DataFrame, leads: pd.DataFrame, until: pd.Timestamp
) -> list[FeedStall]:
    """Feeds silent since their last outcome for longer than usual. `events`: `occurred_at`
    and `source` of every closing outcome; `leads`: `source` and `outcome` (None while open) of
    every lead. Every source together is judged up to `until` (the latest sign of activity: a
    lead, a score, or the date asked for); each source up to the last outcome of any source,
    the time the others went on to, and only while it has open leads."""
    if events.empty:
        return []
    overall = _stall(ALL_SOURCES, events["occurred_at"], until)
    others_until = events["occurred_at"].max()
    open_sources = set(leads.loc[leads["outcome"].isna(), "source"])
    stalls = [
        _stall(str(source), times, others_until)
        for source, times in events.groupby("source")["occurred_at"]
        if source in open_sources
    ]
    return [s for s in [overall, *stalls] if s is not None]


def _stall(subject: str, times: pd.Series, until: pd.Timestamp) -> FeedStall | None:
    if times.empty:
        return None
    ordered = times.sort_values()
    last = ordered.iloc[-1]
    recent = ordered[ordered >= last - WINDOW]
    if len(recent) < MIN_OUTCOMES:
        return None
    span_days = max((last - recent.iloc[0]) / pd.Timedelta(days=1), 1.0)
    rate = len(recent) / span_days
    longest_gap = recent.diff().max() / pd.Timedelta(days=1) if len(recent) > 1 else 0.0
    usual = max(math.log(1 / ALPHA) / rate, float(longest_gap))
    silent = (until - last) / pd.Timedelta(days=1)
    if silent <= usual:
        return None
    return FeedStall(subject, last, float(silent), usual, len(recent))
