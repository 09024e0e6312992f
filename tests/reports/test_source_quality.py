"""Source quality on the demo funnel: the collapse named with its date within weeks, nothing
else named, and the monthly table's rates and maturity."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from reports.source_quality import monthly
from reports.source_signals import WIN_RATE, source_changes
from store.demo_funnel import COLLAPSE_AT, COLLAPSING_SOURCE, END, generate_demo_funnel


def leads_of(seed: int, as_of: pd.Timestamp) -> pd.DataFrame:
    """The funnel's leads as a report on `as_of` knows them (no champion)."""
    funnel = generate_demo_funnel(seed=seed)
    closing = funnel.outcomes.rename(columns={"occurred_at": "closed_at"})
    closing = closing[closing["closed_at"] <= as_of]
    leads = funnel.leads[funnel.leads["created_at"] <= as_of]
    return (
        leads[["lead_id", "created_at", "source"]]
        .merge(closing[["lead_id", "outcome", "closed_at"]], how="left")
        .assign(probability=np.nan)
    )


@pytest.mark.parametrize(("seed", "days_after"), [(0, 214), (7, 214), (0, 70), (7, 70)])
def test_the_demo_collapse_is_named_with_its_date_and_nothing_else(
    seed: int, days_after: int
) -> None:
    # 70 days after the change, the fixed-horizon rule this replaced had not a single lead
    # old enough to judge since the change.
    as_of = pd.Timestamp(COLLAPSE_AT) + pd.Timedelta(days=days_after)
    changes = source_changes(leads_of(seed, as_of), as_of, WIN_RATE)
    named = [c for c in changes if c.named]
    assert [c.source for c in named] == [COLLAPSING_SOURCE]
    found = named[0]
    assert abs(pd.Timestamp(found.since) - pd.Timestamp(COLLAPSE_AT.date())) <= timedelta(days=15)
    assert found.rate_after < 0.5 * found.rate_before


def test_monthly_rates_and_maturity() -> None:
    leads = leads_of(0, pd.Timestamp(END))
    as_of = pd.Timestamp(END)
    table = monthly(leads, as_of, timedelta(days=60))
    row = table[(table["source"] == "referral") & (table["month"] == pd.Period("2026-01"))].iloc[0]
    assert row["win_rate"] == pytest.approx(
        row["won"] / (row["won"] + row["lost"] + row["disqualified"])
    )
    assert bool(row["mature"]) and not table[table["month"] == pd.Period("2026-10")]["mature"].any()
