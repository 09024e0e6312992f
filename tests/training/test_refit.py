"""The served model is the gate's choice refit on every closed lead, its intercept moved to the
newest settled leads when there are enough; what the gate judged stays the card's holdout
record."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models.registry import load_champion
from tests.support import TrainedSetup
from training.candidates import records
from training.dataset import CREATED_AT, LABEL, OCCURRED_AT, WEIGHT
from training.pipeline import TrainedCandidate, TrainingConfig
from training.refit import MIN_RECALIBRATION_OUTCOMES, refit_chosen, refit_intercept, settled_newest


def test_the_registered_model_learnt_from_the_holdout_too(trained: TrainedSetup) -> None:
    candidate = trained.run.candidate
    info = candidate.card.model_info
    assert info.refit_leads == candidate.facts.n_train + candidate.facts.n_holdout
    champion = load_champion(trained.client, trained.settings.model_name).champion
    assert champion is not None
    assert champion.card.model_info.refit_leads == info.refit_leads
    leads = records(candidate.holdout, champion.scorer.feature_fields)
    np.testing.assert_allclose(
        champion.scorer.predict_proba(leads), candidate.scorer.predict_proba(leads)
    )
    judged = candidate.fitted[candidate.chosen].scorer.predict_proba(leads)
    assert not np.allclose(judged, candidate.scorer.predict_proba(leads))


def test_the_card_keeps_the_holdout_metrics_of_the_model_the_gate_judged(
    trained: TrainedSetup,
) -> None:
    candidate = trained.run.candidate
    assert candidate.card.metrics == candidate.evaluations[candidate.chosen].metrics


def _dated(candidate: TrainedCandidate, created_at_close: bool) -> TrainedCandidate:
    """The candidate with every lead's creation moved to its outcome (an export without dates:
    all settled) or the holdout's outcomes moved to one day after the newest creation (none of
    the newest settled)."""
    if created_at_close:
        train, holdout = (
            part.assign(**{CREATED_AT: part[OCCURRED_AT]})
            for part in (candidate.train, candidate.holdout)
        )
    else:
        train = candidate.train
        end = candidate.holdout[CREATED_AT].max() + pd.Timedelta(days=1)
        holdout = candidate.holdout.assign(**{OCCURRED_AT: end})
    return dataclasses.replace(candidate, train=train, holdout=holdout, served=None)


def test_settled_newest_leads_set_the_intercept(trained: TrainedSetup) -> None:
    candidate = _dated(trained.run.candidate, created_at_close=True)
    served = refit_chosen(candidate, TrainingConfig()).model
    newest = candidate.holdout
    assert served.info.recalibration_leads == len(newest)
    predicted = served.scorer.predict_proba(records(newest, served.scorer.feature_fields))
    observed = np.average(newest[LABEL], weights=newest[WEIGHT])
    assert np.average(predicted, weights=newest[WEIGHT]) == pytest.approx(observed, rel=1e-6)
    judged = candidate.fitted[candidate.chosen].scorer.calibration
    assert served.scorer.calibration.slope == judged.slope


def test_without_settled_newest_leads_the_validation_calibration_is_kept(
    trained: TrainedSetup,
) -> None:
    candidate = _dated(trained.run.candidate, created_at_close=False)
    served = refit_chosen(candidate, TrainingConfig()).model
    assert served.info.recalibration_leads == 0
    assert served.scorer.calibration == candidate.fitted[candidate.chosen].scorer.calibration


def test_too_few_settled_outcomes_of_one_kind_move_nothing() -> None:
    created = pd.Series(pd.date_range("2026-01-01", periods=200, freq="D", tz="UTC"))
    won = np.zeros(200, dtype=int)
    won[-MIN_RECALIBRATION_OUTCOMES + 1 :] = 1
    rows = pd.DataFrame({CREATED_AT: created, OCCURRED_AT: created, LABEL: won})
    assert not settled_newest(rows, 100).any()
    won[-MIN_RECALIBRATION_OUTCOMES:] = 1
    assert settled_newest(rows.assign(**{LABEL: won}), 100).all()


def test_boosting_rounds_grow_with_the_leads(noisy_candidate: TrainedCandidate) -> None:
    """The shuffled-label run's lightgbm, refit: as many trees per lead as early stopping
    chose on the fitting leads, whichever kind the gate left chosen."""
    boosted = dataclasses.replace(noisy_candidate, chosen="lightgbm", served=None)
    refit = refit_chosen(boosted, TrainingConfig())
    info = refit.card.model_info
    early = boosted.fitted["lightgbm"].info.best_iteration
    assert info.early_stopped_iteration == early
    expected = np.ceil(early * info.refit_leads / boosted.facts.n_fit)
    assert info.best_iteration == expected
    assert refit.scorer.feature_fields == boosted.fitted["lightgbm"].scorer.feature_fields


def test_a_moved_base_rate_is_followed_by_the_intercept_alone() -> None:
    rng = np.random.default_rng(0)
    margin = rng.normal(size=20_000)
    y = (rng.random(margin.size) < expit(1.3 * margin - 0.5)).astype(float)
    weights = np.ones_like(y)
    calibration = refit_intercept(margin, y, weights, slope=1.3)
    assert calibration.slope == 1.3
    assert calibration.intercept == pytest.approx(-0.5, abs=0.05)
    assert calibration.probability(margin).mean() == pytest.approx(y.mean(), rel=1e-6)
