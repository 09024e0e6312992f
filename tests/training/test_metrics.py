"""Holdout metrics on cases whose answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import METRIC_NAMES, holdout_metrics, lift_at


def test_lift_compares_the_top_slice_with_the_overall_rate() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert lift_at(y, p, 0.1) == pytest.approx(1.0 / 0.2)
    assert lift_at(y, p, 0.2) == pytest.approx(0.5 / 0.2)


def test_perfect_and_reversed_rankings() -> None:
    y = np.array([0, 0, 1, 1])
    perfect = holdout_metrics(y, np.array([0.01, 0.02, 0.98, 0.99]))
    reversed_ = holdout_metrics(y, np.array([0.99, 0.98, 0.02, 0.01]))
    assert tuple(perfect) == METRIC_NAMES
    assert perfect["roc_auc"] == 1.0 and reversed_["roc_auc"] == 0.0
    assert perfect["brier"] < 0.001 < reversed_["brier"]
    assert perfect["log_loss"] < reversed_["log_loss"]


def test_tied_scores_do_not_depend_on_row_order() -> None:
    """A constant score ranks nobody above anybody: its lift is 1 whatever the row order."""
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    constant = np.full(10, 0.3)
    assert lift_at(y, constant, 0.1) == pytest.approx(1.0)
    assert lift_at(y[::-1], constant, 0.1) == pytest.approx(1.0)
    two_levels = np.array([0.9] * 4 + [0.1] * 6)  # the top 10% is part of a tie group of 4
    assert lift_at(y, two_levels, 0.1) == pytest.approx((3 / 4) / 0.3)
