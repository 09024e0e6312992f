"""Training on the demo funnel: quality against the best achievable, and the promotion gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from features.schema import LeadSchema
from models.registry import CHALLENGER, CHAMPION, alias_version, mlflow_client
from store.demo_funnel import DemoFunnel
from store.repository import training_frames
from tests.support import NOW, TrainedSetup, make_settings, open_store, train_setup
from training.dataset import LABEL
from training.fit import BoosterConfig
from training.pipeline import TrainedCandidate, TrainingConfig, train_candidate
from training.run import train_and_register
from training.split import NotEnoughDataError


@pytest.fixture(scope="module")
def candidate(trained: TrainedSetup, demo_schema: LeadSchema) -> TrainedCandidate:
    with trained.sessions() as session:
        frames = training_frames(session)
    return train_candidate(frames, demo_schema, TrainingConfig(), NOW)


def test_holdout_auc_is_near_the_best_achievable(
    candidate: TrainedCandidate, small_funnel: DemoFunnel
) -> None:
    """The generator's true probabilities bound what any model can reach on these leads."""
    holdout = candidate.holdout
    best = roc_auc_score(holdout[LABEL], small_funnel.true_probability[holdout["lead_id"]])
    auc = candidate.metrics["roc_auc"]
    assert auc > 0.70
    assert best - auc < 0.05, f"model {auc:.3f} vs best achievable {best:.3f}"


def test_probabilities_are_calibrated_on_the_holdout(candidate: TrainedCandidate) -> None:
    predicted = candidate.holdout_probability.mean()
    actual = candidate.holdout[LABEL].mean()
    assert abs(predicted - actual) < 0.03
    top = candidate.holdout_probability >= np.quantile(candidate.holdout_probability, 0.9)
    assert candidate.holdout[LABEL][top].mean() > 2 * actual


def test_holdout_is_newer_than_every_training_lead(candidate: TrainedCandidate) -> None:
    assert candidate.train["as_of"].max() < candidate.holdout["as_of"].min()
    assert len(candidate.holdout) == pytest.approx(0.2 * len(candidate.dataset), abs=2)
    assert set(candidate.train["lead_id"]).isdisjoint(candidate.holdout["lead_id"])


def test_training_is_deterministic(
    candidate: TrainedCandidate, trained: TrainedSetup, demo_schema: LeadSchema
) -> None:
    with trained.sessions() as session:
        again = train_candidate(training_frames(session), demo_schema, TrainingConfig(), NOW)
    assert again.metrics == candidate.metrics


def test_a_worse_challenger_is_registered_but_not_promoted(
    tmp_path: Path,
    small_funnel: DemoFunnel,
    demo_schema: LeadSchema,
    request: pytest.FixtureRequest,
) -> None:
    setup = train_setup(tmp_path, small_funnel, demo_schema)
    request.addfinalizer(setup.close)
    client = mlflow_client(setup.settings.mlflow_tracking_uri)
    name = setup.settings.model_name
    stump = TrainingConfig(booster=BoosterConfig(num_leaves=2, max_rounds=1))
    weak = train_and_register(setup.settings, setup.sessions, NOW, stump)
    assert weak.model_version == "2" and not weak.promoted
    assert weak.metrics["roc_auc"] < setup.run.metrics["roc_auc"]
    assert weak.champion_metrics["roc_auc"] == pytest.approx(setup.run.metrics["roc_auc"])
    assert "worse" in weak.promotion_reason
    assert str(alias_version(client, name, CHAMPION).version) == "1"
    assert str(alias_version(client, name, CHALLENGER).version) == "2"
    assert client.get_model_version(name, "2").tags["promoted"] == "false"

    better = train_and_register(setup.settings, setup.sessions, NOW)
    assert better.model_version == "3" and better.promoted
    assert str(alias_version(client, name, CHAMPION).version) == "3"
    assert alias_version(client, name, CHALLENGER) is None


def test_an_empty_store_is_refused_with_a_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    sessions = open_store(settings.database_url)
    with pytest.raises(NotEnoughDataError, match="too few"):
        train_and_register(settings, sessions, NOW)
    sessions.kw["bind"].dispose()
