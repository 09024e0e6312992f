"""Follow-up SLA: how fast sales contacts the leads marketing hands over (pure).

The SLA is "sales contacts a handed-over lead within `sla_hours`". A hand-over breaches it when
the first contact came later, or has not come while the lead stayed open past the SLA time
(a lead closed before any contact, e.g. disqualified by marketing, stops the clock).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from reports.alerts import Alert
from store.outcomes import Outcome

RESPONSE_BUCKETS = (
    (0.0, 1.0, "under 1 hour"),
    (1.0, 4.0, "1-4 hours"),
    (4.0, 24.0, "4-24 hours"),
    (24.0, 72.0, "1-3 days"),
    (72.0, math.inf, "over 3 days"),
)
#: A source whose breach rate over the last `ALERT_DAYS` days exceeds this raises an alert.
ALERT_BREACH_RATE = 0.25
ALERT_DAYS = 30
ALERT_MIN_HAND_OVERS = 20


def with_response(leads: pd.DataFrame, as_of: pd.Timestamp, sla_hours: float) -> pd.DataFrame:
    """Handed-over leads with their response time (hours) and whether they breached the SLA."""
    handed = leads[leads["handed_over"].notna()].copy()
    contacted = handed["contacted"].where(handed["contacted"] >= handed["handed_over"])
    handed["response_hours"] = (contacted - handed["handed_over"]).dt.total_seconds() / 3600
    clock_stops = handed["closed_at"].where(handed["closed_at"] < as_of, as_of)
    waited = (clock_stops - handed["handed_over"]).dt.total_seconds() / 3600
    late = handed["response_hours"] > sla_hours
    waiting_too_long = handed["response_hours"].isna() & (waited > sla_hours)
    handed["breached"] = late | waiting_too_long
    return handed


def by_source_and_month(handed: pd.DataFrame) -> pd.DataFrame:
    frame = handed.assign(month=handed["handed_over"].dt.tz_localize(None).dt.to_period("M"))
    table = frame.groupby(["source", "month"]).agg(
        handed_over=("lead_id", "size"),
        contacted=("response_hours", "count"),
        median_hours=("response_hours", "median"),
        p90_hours=("response_hours", lambda h: h.quantile(0.9)),
        breaches=("breached", "sum"),
    )
    table["breach_rate"] = table["breaches"] / table["handed_over"]
    return table.reset_index()


def win_rate_by_response(handed: pd.DataFrame) -> list[dict]:
    """Among closed hand-overs: win rate by how fast sales responded."""
    closed = handed[handed["outcome"].notna()]
    rows = []
    for low, high, label in RESPONSE_BUCKETS:
        part = closed[(closed["response_hours"] >= low) & (closed["response_hours"] < high)]
        rows.append(_bucket(label, part))
    rows.append(_bucket("never contacted", closed[closed["response_hours"].isna()]))
    return rows


def _bucket(label: str, part: pd.DataFrame) -> dict:
    won = float((part["outcome"] == Outcome.WON).mean()) if len(part) else None
    return {"response": label, "closed_leads": int(len(part)), "win_rate": won}


def breaching_since(handed: pd.DataFrame, as_of: pd.Timestamp) -> pd.Timestamp:
    """Start of the run of weeks, ending at `as_of`, whose breach rate is above the threshold."""
    weeks = ((as_of - handed["handed_over"]).dt.days // 7).to_numpy()
    rates = handed.groupby(weeks)["breached"].mean()
    streak = 0
    while streak in rates.index and rates[streak] > ALERT_BREACH_RATE:
        streak += 1
    in_streak = weeks < max(streak, 1)
    return handed.loc[in_streak, "handed_over"].min()


def breach_alerts(handed: pd.DataFrame, as_of: pd.Timestamp, sla_hours: float) -> list[Alert]:
    recent = handed[handed["handed_over"] > as_of - pd.Timedelta(days=ALERT_DAYS)]
    alerts = []
    for source, part in recent.groupby("source"):
        rate = float(part["breached"].mean())
        if len(part) >= ALERT_MIN_HAND_OVERS and rate > ALERT_BREACH_RATE:
            since = breaching_since(handed[handed["source"] == source], as_of)
            alerts.append(
                Alert(
                    kind="sla_breaches",
                    subject=str(source),
                    since=since.date().isoformat(),
                    evidence=(
                        f"{rate:.0%} of {len(part)} hand-overs in the last {ALERT_DAYS} days "
                        f"were not contacted within {sla_hours:g} hours "
                        f"(median response {np.nanmedian(part['response_hours']):.1f} h)"
                    ),
                    report="follow_up.html",
                )
            )
    return alerts
