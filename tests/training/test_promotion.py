"""The promotion gate: paired bootstrap intervals, and the decisions drawn from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.registry import LoadedScorer
from tests.support import TrainedSetup
from training.dataset import AS_OF
from training.metrics import Comparison, compare_auc, weighted_aucs
from training.promotion import decide_promotion, gate

RNG = np.random.default_rng(11)
Y = (RNG.random(3_000) < 0.2).astype(int)
GOOD = Y + RNG.normal(0, 0.9, size=3_000)
WEAK = Y + RNG.normal(0, 2.5, size=3_000)


def test_weighted_auc_matches_scikit_learn_with_ties_and_weights() -> None:
    p = np.round(GOOD, 1)  # many ties
    weights = RNG.integers(0, 4, size=(3, len(Y))).astype(float)
    expected = [roc_auc_score(Y, p, sample_weight=w) for w in weights]
    np.testing.assert_allclose(weighted_aucs(Y, p, weights), expected, atol=1e-12)


def test_a_clearly_better_model_has_an_interval_above_zero() -> None:
    better = compare_auc(Y, GOOD, WEAK, "weak")
    assert better.difference == pytest.approx(roc_auc_score(Y, GOOD) - roc_auc_score(Y, WEAK))
    assert 0 < better.low < better.difference < better.high
    same = compare_auc(Y, GOOD, GOOD.copy(), "itself")
    assert (same.difference, same.low, same.high) == (0.0, 0.0, 0.0)


def test_lead_weights_change_the_comparison() -> None:
    weights = np.where(GOOD > 0.5, 5.0, 1.0)  # within-class differences: AUC depends on them
    weighted = compare_auc(Y, GOOD, WEAK, "weak", weights)
    plain = compare_auc(Y, GOOD, WEAK, "weak")
    assert weighted.difference == pytest.approx(
        roc_auc_score(Y, GOOD, sample_weight=weights)
        - roc_auc_score(Y, WEAK, sample_weight=weights)
    )
    assert weighted.low != plain.low


def interval(low: float, high: float, against: str = "logistic_regression") -> Comparison:
    return Comparison(against, (low + high) / 2, low, high)


def test_decisions() -> None:
    clear_win = interval(0.01, 0.03)
    assert decide_promotion(clear_win, None).promote
    assert not decide_promotion(interval(-0.005, 0.02), None).promote
    assert decide_promotion(clear_win, interval(0.0, 0.0, "version 1")).promote
    assert decide_promotion(clear_win, interval(-0.004, 0.006, "version 1")).promote
    worse = decide_promotion(clear_win, Comparison("version 1", -0.002, -0.012, 0.008))
    assert not worse.promote and "worse than the champion (version 1)" in worse.reason
    no_better = decide_promotion(interval(-0.01, 0.02, "rules"), interval(0.01, 0.02))
    assert not no_better.promote and "best baseline (rules)" in no_better.reason


def test_an_undefined_interval_never_promotes() -> None:
    """A holdout without wins in some resamples gives NaN bounds: that is no evidence."""
    nan = float("nan")
    assert not decide_promotion(Comparison("rules", 0.0, nan, nan), None).promote
    assert not decide_promotion(
        interval(0.01, 0.03), Comparison("version 1", nan, nan, nan)
    ).promote


def test_a_champion_refit_on_the_holdout_is_judged_only_on_leads_it_never_saw(
    trained: TrainedSetup,
) -> None:
    """The trained run's own model as champion: refit, it learnt from every holdout lead, so
    it is not compared; the same model before the refit never saw them, so it is."""
    candidate = dataclasses.replace(trained.run.candidate, served=None)
    refit = LoadedScorer(trained.run.candidate.scorer, version="7", run_id="")
    assert refit.card.learnt_until == candidate.holdout[AS_OF].max()
    skipped = gate(candidate, refit)
    assert skipped.champion_metrics is None
    assert "champion (version 7) was not compared: it learnt from all but 0" in (
        skipped.decision.reason
    )
    judged = LoadedScorer(candidate.scorer, version="6", run_id="")
    compared = gate(candidate, judged)
    assert compared.champion_metrics == pytest.approx(candidate.metrics)
    assert f"{len(candidate.holdout):,} holdout leads it never saw" in compared.decision.reason
