"""Source quality: which lead sources convert, month by month, and which stopped (pure).

Recent leads have not had time to close, and the fast outcomes (disqualifications) arrive
first: a plain monthly win rate always sags at the end and would cry wolf. Change detection
therefore uses a fixed horizon: a lead counts as won if it was won within `horizon` of being
created, and only leads at least `horizon` old are judged. The horizon is the time within
which three quarters of the won leads closed.

For each source, the mature leads in creation order are a sequence of Bernoulli trials. A
single change point is tested Bayesianly: uniform Beta(1, 1) priors on the rate before and
after, a uniform prior on the day of change, prior odds 1:1 against no change. A source is
reported as having stopped converting when the posterior probability of a change is at least
`CHANGE_PROBABILITY` (0.99), the rate after is at most `1 - MIN_RELATIVE_DROP` (75%) of the rate
before, and both sides hold at least `MIN_SIDE_LEADS` (40) leads. The reported date is the most
probable day of change, with a 90% credible interval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
import pandas as pd
from scipy.special import betaln, logsumexp

from store.outcomes import Outcome

CHANGE_PROBABILITY = 0.99
MIN_RELATIVE_DROP = 0.25
MIN_SIDE_LEADS = 40
HORIZON_QUANTILE = 0.75
MIN_HORIZON = timedelta(days=7)
MAX_HORIZON = timedelta(days=180)
DEFAULT_HORIZON = timedelta(days=90)


@dataclass(frozen=True)
class SourceChange:
    source: str
    since: str  # the most probable first day of the new rate
    since_interval: tuple[str, str]  # 90% credible interval of that day
    probability: float  # posterior probability that the rate changed at all
    rate_before: float  # won within the horizon, posterior mean
    rate_after: float
    leads_before: int
    leads_after: int

    @property
    def dropped(self) -> bool:
        return (
            self.probability >= CHANGE_PROBABILITY
            and self.rate_after <= (1 - MIN_RELATIVE_DROP) * self.rate_before
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"dropped": self.dropped}


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


def detect_change(source: str, created: pd.Series, won: np.ndarray) -> SourceChange | None:
    """The most probable single change of the win rate in one source's mature leads."""
    daily = pd.DataFrame({"day": created.dt.floor("D"), "won": won}).groupby("day")["won"]
    counts = daily.agg(["sum", "count"])
    k, n = counts["sum"].to_numpy(float), counts["count"].to_numpy(float)
    won_before, seen_before = np.cumsum(k)[:-1], np.cumsum(n)[:-1]
    total_won, total = k.sum(), n.sum()
    usable = (seen_before >= MIN_SIDE_LEADS) & (total - seen_before >= MIN_SIDE_LEADS)
    if not usable.any():
        return None
    a, b = won_before[usable], seen_before[usable]
    split = betaln(1 + a, 1 + b - a) + betaln(1 + total_won - a, 1 + total - b - total_won + a)
    no_change = betaln(1 + total_won, 1 + total - total_won)
    change = logsumexp(split) - np.log(len(split))
    probability = float(1.0 / (1.0 + np.exp(no_change - change)))
    days = counts.index[1:][usable]
    posterior = np.exp(split - logsumexp(split))
    cumulative = np.cumsum(posterior)
    best = int(np.argmax(split))
    low = days[int(np.searchsorted(cumulative, 0.05))]
    high = days[min(int(np.searchsorted(cumulative, 0.95)), len(days) - 1)]
    return SourceChange(
        source=source,
        since=days[best].date().isoformat(),
        since_interval=(low.date().isoformat(), high.date().isoformat()),
        probability=probability,
        rate_before=float((a[best] + 1) / (b[best] + 2)),
        rate_after=float((total_won - a[best] + 1) / (total - b[best] + 2)),
        leads_before=int(b[best]),
        leads_after=int(total - b[best]),
    )


def source_changes(leads: pd.DataFrame, as_of: pd.Timestamp, horizon: timedelta) -> list[dict]:
    """The change found in each source's mature leads (dropped or not), largest drop first."""
    mature = leads[leads["created_at"] <= as_of - horizon]
    won = won_within(mature, horizon).to_numpy()
    found = []
    for source, index in mature.groupby("source").indices.items():
        change = detect_change(str(source), mature["created_at"].iloc[index], won[index])
        if change is not None:
            found.append(change.to_dict())
    return sorted(found, key=lambda c: c["rate_after"] / max(c["rate_before"], 1e-9))


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
