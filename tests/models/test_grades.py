"""Grade cut-offs are absolute probabilities, derived once from base rate and sales capacity."""

from __future__ import annotations

import numpy as np
import pytest

from models.grades import GradeCutoffs, derive_cutoffs

RECENT = np.random.default_rng(2).beta(1.2, 6.0, size=10_000)


def test_without_capacity_grades_follow_the_base_rate() -> None:
    cutoffs = derive_cutoffs(RECENT, base_rate=0.15, leads_per_month=2_000, sales_capacity=None)
    assert cutoffs == GradeCutoffs(a=0.3, b=0.15, c=0.075)


def test_capacity_sets_grade_a_to_the_leads_sales_can_work() -> None:
    cutoffs = derive_cutoffs(RECENT, base_rate=0.15, leads_per_month=2_000, sales_capacity=300)
    share_a = float(np.mean(RECENT >= cutoffs.a))
    assert share_a == pytest.approx(300 / 2_000, abs=0.005)
    more = derive_cutoffs(RECENT, base_rate=0.15, leads_per_month=2_000, sales_capacity=600)
    assert more.a < cutoffs.a and more.b == cutoffs.b


def test_a_capacity_beyond_every_lead_still_keeps_grade_a_for_better_than_average() -> None:
    """Sales could work every lead; an average lead is still a B, not an A."""
    everyone = derive_cutoffs(RECENT, base_rate=0.15, leads_per_month=100, sales_capacity=10_000)
    assert everyone.grade(0.15) == "B" and everyone.grade(0.9) == "A"
    assert np.mean(RECENT >= everyone.a) < np.mean(RECENT >= everyone.b)
