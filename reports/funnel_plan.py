"""Funnel plan: the leads each source must bring to reach a revenue target (pure).

With the current source mix, each source's measured win rate and average deal size (among the
leads of the `RATE_DAYS` days before the outcome horizon; for a source that stopped converting,
its rate since the drop as the change detection measured it) give the
revenue a lead of that source brings. The win rate counts wins within the horizon, which have
all arrived, scaled up by the ratio of all wins to early wins among settled leads. The
target divided by the mix's revenue per lead is the number of leads needed; hand-overs follow
from each source's hand-over rate and are set against sales capacity. The rule of thumb "to
close $1,000 you need a $3,000-$5,000 pipeline" is the pipeline multiple, 1 / win rate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from reports.source_quality import MAX_HORIZON, won_within
from store.outcomes import Outcome

PERIODS = {"month": 1, "quarter": 3, "year": 12}
MIX_DAYS = 90
#: Win rates and deal sizes come from the leads created in this many days before the horizon:
#: recent enough to reflect a source that changed, old enough to have closed.
RATE_DAYS = 120


@dataclass(frozen=True)
class RateSinceDrop:
    """A source's win rate since its detected drop, and how many leads it was measured on."""

    win_rate: float
    leads: int


@dataclass(frozen=True)
class Target:
    amount: float
    months: int

    @property
    def label(self) -> str:
        name = {1: "month", 3: "quarter", 12: "year"}.get(self.months, f"{self.months} months")
        return f"{self.amount:,.0f} per {name}"


def parse_target(text: str) -> Target:
    """`250000/quarter`, `80000/month`, `1e6/year` or `300000/6m`."""
    match = re.fullmatch(r"\s*([0-9.eE+_,]+)\s*/\s*(month|quarter|year|(\d+)\s*m)\s*", text)
    if not match:
        raise ValueError(f"target {text!r}: write AMOUNT/PERIOD, e.g. 250000/quarter")
    amount = float(match.group(1).replace(",", "").replace("_", ""))
    months = int(match.group(3)) if match.group(3) else PERIODS[match.group(2)]
    if not math.isfinite(amount) or amount <= 0 or months <= 0:
        raise ValueError(f"target {text!r}: amount and period must be positive and finite")
    return Target(amount, months)


def default_target(leads: pd.DataFrame, as_of: pd.Timestamp) -> Target:
    """Without a target: the last quarter's won revenue plus 20%."""
    won = leads[
        (leads["outcome"] == Outcome.WON) & (leads["closed_at"] > as_of - pd.Timedelta(days=91))
    ]
    return Target(round(float(won["amount"].fillna(0).sum()) * 1.2, -3) or 100_000.0, 3)


def completion(leads: pd.DataFrame, as_of: pd.Timestamp, horizon: timedelta) -> float:
    """How many wins there are in all for each win within the horizon (from settled leads)."""
    settled = leads[leads["created_at"] <= as_of - MAX_HORIZON]
    won = settled["outcome"] == Outcome.WON
    early = won & (settled["closed_at"] - settled["created_at"] <= horizon)
    return float(won.sum() / early.sum()) if early.sum() else 1.0


def funnel_plan(
    leads: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon: timedelta,
    target: Target,
    capacity_per_month: int | None,
    rates_since_drop: dict[str, RateSinceDrop] | None = None,
) -> dict:
    """The plan; `rates_since_drop` gives the win rate of a source since its detected drop
    (measured on every lead since, its outcomes so far weighed by its age: its mature leads
    still show the old rate)."""
    ripe_until = as_of - horizon
    rate_from = ripe_until - pd.Timedelta(days=RATE_DAYS)
    mature = leads[(leads["created_at"] <= ripe_until) & (leads["created_at"] > rate_from)]
    recent = leads[leads["created_at"] > as_of - pd.Timedelta(days=MIX_DAYS)]
    mix = recent["source"].value_counts(normalize=True)
    # Wins within the horizon are all seen by now; the rest is projected from settled leads.
    factor = completion(leads, as_of, horizon)
    rows = []
    for source, share in mix.items():
        part = mature[mature["source"] == source]
        early = won_within(part, horizon)
        won = part[part["outcome"] == Outcome.WON]
        win_rate = min(float(early.mean()) * factor, 1.0) if len(part) else 0.0
        measured_on = len(part)
        dropped = (rates_since_drop or {}).get(str(source))
        if dropped is not None:
            win_rate, measured_on = dropped.win_rate, dropped.leads
        deal = float(won["amount"].mean()) if won["amount"].notna().any() else 0.0
        handover_rate = float(part["handed_over"].notna().mean()) if len(part) else 0.0
        rows.append(
            {
                "source": str(source),
                "share": float(share),
                "win_rate": win_rate,
                "rate_leads": measured_on,  # the leads the win rate was measured on
                "average_deal": deal,
                "revenue_per_lead": win_rate * deal,
                "handover_rate": handover_rate,
                "pipeline_multiple": 1 / win_rate if win_rate else None,
            }
        )
    per_lead = sum(r["share"] * r["revenue_per_lead"] for r in rows)
    leads_needed = target.amount / per_lead if per_lead else None
    for r in rows:
        r["leads_needed"] = r["share"] * leads_needed if leads_needed else None
        r["leads_per_month"] = r["leads_needed"] / target.months if leads_needed else None
        r["hand_overs_per_month"] = (
            r["leads_per_month"] * r["handover_rate"] if leads_needed else None
        )
    hand_overs = sum(r["hand_overs_per_month"] or 0 for r in rows)
    return {
        "target": target.label,
        "target_amount": target.amount,
        "months": target.months,
        "revenue_per_lead": per_lead,
        "leads_needed": leads_needed,
        "leads_per_month": leads_needed / target.months if leads_needed else None,
        "current_leads_per_month": len(recent) * 30 / MIX_DAYS,
        "hand_overs_per_month": hand_overs,
        "sales_capacity_per_month": capacity_per_month,
        "capacity_used": hand_overs / capacity_per_month if capacity_per_month else None,
        "sources": sorted(rows, key=lambda r: -r["share"]),
    }
