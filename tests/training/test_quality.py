"""The demo funnel's quality bar: beat the baselines, near the best achievable, calibrated.

These fit a model of their own on the full default demo funnel (24,000 leads), the size
`make train` uses: the bar is set for that size, and the session's small model would judge a
smaller funnel.
"""

from __future__ import annotations

import dataclasses

import pytest
from sklearn.metrics import roc_auc_score

from features.schema import LeadSchema
from models.registry import LoadedScorer
from store.demo_funnel import DemoFunnel, generate_demo_funnel
from store.repository import TrainingFrames, training_frames
from tests.support import NOW, TrainedSetup, open_store, seed
from training.dataset import LABEL, WEIGHT
from training.pipeline import TrainedCandidate, TrainingConfig, train_candidate
from training.promotion import gate


@pytest.fixture(scope="module")
def demo() -> DemoFunnel:
    return generate_demo_funnel()


@pytest.fixture(scope="module")
def frames(
    demo: DemoFunnel, demo_schema: LeadSchema, tmp_path_factory: pytest.TempPathFactory
) -> TrainingFrames:
    sessions = open_store(f"sqlite:///{tmp_path_factory.mktemp('demo')}/store.db")
    seed(sessions, demo, demo_schema)
    with sessions() as session:
        frames = training_frames(session)
    sessions.kw["bind"].dispose()
    return frames


@pytest.fixture(scope="module")
def run(frames: TrainingFrames, demo_schema: LeadSchema) -> TrainedCandidate:
    return train_candidate(frames, demo_schema, TrainingConfig(), NOW)


def test_the_model_beats_both_baselines_and_is_promoted(run: TrainedCandidate) -> None:
    judged = gate(run, None)
    challenger, decision = judged.candidate, judged.decision
    auc = challenger.metrics["roc_auc"]
    assert challenger.chosen.startswith("lightgbm")
    assert auc > run.evaluations["logistic_regression"].metrics["roc_auc"]
    assert auc > run.evaluations["rules"].metrics["roc_auc"]
    assert decision.promote, decision.reason
    assert decision.comparisons[0].against == "logistic_regression"
    assert decision.comparisons[0].low > 0


def test_within_three_points_of_the_best_achievable_auc(
    run: TrainedCandidate, demo: DemoFunnel
) -> None:
    holdout = run.holdout
    best = roc_auc_score(
        holdout[LABEL], demo.true_probability[holdout["lead_id"]], sample_weight=holdout[WEIGHT]
    )
    assert best - run.metrics["roc_auc"] <= 0.03, (run.metrics["roc_auc"], best)


def test_calibrated_on_the_holdout(run: TrainedCandidate) -> None:
    assert run.metrics["ece"] <= 0.02


def test_a_challenger_trained_on_shuffled_labels_is_never_promoted(
    noisy_candidate: TrainedCandidate, trained: TrainedSetup
) -> None:
    """Labels shuffled where the model learns, true where it is judged (the small funnel); the
    champion is the real model before its refit, so it never saw the holdout either."""
    champion = dataclasses.replace(trained.run.candidate, served=None)
    assert noisy_candidate.holdout["lead_id"].tolist() == champion.holdout["lead_id"].tolist()
    loaded = LoadedScorer(champion.scorer, version="1", run_id="the real model")
    decision = gate(noisy_candidate, loaded).decision
    assert not decision.promote, decision.reason
    versus_champion = decision.comparisons[-1]
    assert versus_champion.against.startswith("version 1") and versus_champion.high < 0
