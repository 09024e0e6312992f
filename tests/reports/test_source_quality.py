"""Change detection: finds a source that stopped converting, with its date, and nothing else."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from reports.source_quality import (
    CHANGE_PROBABILITY,
    detect_change,
    monthly,
    outcome_horizon,
    source_changes,
)
from store.demo_funnel import COLLAPSE_AT, COLLAPSING_SOURCE, END, generate_demo_funnel


def leads_of(seed: int) -> pd.DataFrame:
    funnel = generate_demo_funnel(seed=seed)
    closing = funnel.outcomes.rename(columns={"occurred_at": "closed_at"})
    return (
        funnel.leads[["lead_id", "created_at", "source"]]
        .merge(closing[["lead_id", "outcome", "closed_at"]], how="left")
        .assign(probability=np.nan)
    )


@pytest.mark.parametrize("seed", [0, 7])
def test_the_demo_collapse_is_named_with_its_date(seed: int) -> None:
    leads = leads_of(seed)
    changes = source_changes(leads, pd.Timestamp(END), outcome_horizon(leads, pd.Timestamp(END)))
    dropped = [c for c in changes if c["dropped"]]
    assert [c["source"] for c in dropped] == [COLLAPSING_SOURCE]
    found = dropped[0]
    assert abs(pd.Timestamp(found["since"]) - pd.Timestamp(COLLAPSE_AT.date())) <= timedelta(
        days=21
    )
    low, high = map(pd.Timestamp, found["since_interval"])
    assert low <= pd.Timestamp(found["since"]) <= high
    assert found["rate_after"] < 0.5 * found["rate_before"]


def trials(rate_before: float, rate_after: float, days: int = 300, per_day: int = 20) -> tuple:
    rng = np.random.default_rng(1)
    day = pd.date_range("2026-01-01", periods=days, freq="D", tz="UTC").repeat(per_day)
    rate = np.where(np.arange(len(day)) < len(day) // 2, rate_before, rate_after)
    return pd.Series(day), rng.random(len(day)) < rate


def test_a_stable_rate_is_not_a_change() -> None:
    created, won = trials(0.15, 0.15)
    change = detect_change("steady", created, won)
    assert change is not None and change.probability < CHANGE_PROBABILITY and not change.dropped


def test_a_rise_is_a_change_but_not_a_drop() -> None:
    created, won = trials(0.10, 0.25)
    change = detect_change("better", created, won)
    assert change.probability >= CHANGE_PROBABILITY and not change.dropped
    first_new_day = pd.Timestamp("2026-01-01") + pd.Timedelta(days=150)
    assert abs(pd.Timestamp(change.since) - first_new_day) <= pd.Timedelta(days=5)


def test_too_few_leads_give_no_verdict() -> None:
    created, won = trials(0.2, 0.0, days=4, per_day=10)
    assert detect_change("tiny", created, won) is None


def test_monthly_rates_and_maturity() -> None:
    leads = leads_of(0)
    as_of = pd.Timestamp(END)
    table = monthly(leads, as_of, timedelta(days=60))
    row = table[(table["source"] == "referral") & (table["month"] == pd.Period("2026-01"))].iloc[0]
    assert row["win_rate"] == pytest.approx(
        row["won"] / (row["won"] + row["lost"] + row["disqualified"])
    )
    assert bool(row["mature"]) and not table[table["month"] == pd.Period("2026-10")]["mature"].any()
