"""Training runs end to end: choices, the promotion gate in the registry, refusals.

Every test reads the session's one training run (`trained`) or registers its candidates again
in a registry of its own; only the determinism check fits a model of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from features.schema import LeadSchema
from models.registry import (
    CHALLENGER,
    CHAMPION,
    ChampionLookup,
    RegistryError,
    alias_version,
    champion_history,
    load_champion,
    mlflow_client,
    promote_by_hand,
    rollback,
)
from store.demo_funnel import generate_demo_funnel
from store.repository import training_frames
from tests.support import (
    NOW,
    TrainedSetup,
    make_settings,
    open_store,
    register_candidate,
    seed,
    train,
)
from training.candidates import BASELINES, SERVABLE
from training.dataset import AS_OF, CREATED_AT, LABEL, OCCURRED_AT, WEIGHT, build_training_set
from training.metrics import METRIC_NAMES
from training.pipeline import TrainedCandidate, TrainingConfig, choose, train_candidate
from training.split import NotEnoughDataError
from training.tracking import TrackingTarget


@pytest.fixture(scope="module")
def candidate(trained: TrainedSetup) -> TrainedCandidate:
    return trained.run.candidate


def test_every_candidate_and_baseline_is_measured_on_the_same_holdout(
    candidate: TrainedCandidate,
) -> None:
    assert set(candidate.evaluations) == set(SERVABLE) | set(BASELINES)
    for evaluation in candidate.evaluations.values():
        assert tuple(evaluation.metrics) == METRIC_NAMES
        assert len(evaluation.probability) == len(candidate.holdout)
    assert candidate.evaluations["base_rate"].metrics["roc_auc"] == 0.5
    assert candidate.chosen in SERVABLE
    assert candidate.card.baselines["rules"].holdout == candidate.evaluations["rules"].metrics


def test_the_challenger_is_the_best_servable_model_on_validation(
    candidate: TrainedCandidate,
) -> None:
    validation = {n: candidate.evaluations[n].validation_auc for n in SERVABLE}
    # The run's own choice, before the gate may have put the regression forward instead.
    assert validation[choose(candidate.fitted, SERVABLE)] == max(validation.values())


def test_holdout_is_newer_than_every_training_lead(candidate: TrainedCandidate) -> None:
    assert candidate.train[AS_OF].max() < candidate.holdout[AS_OF].min()
    assert len(candidate.holdout) == pytest.approx(0.2 * len(candidate.dataset), abs=2)
    assert set(candidate.train["lead_id"]).isdisjoint(candidate.holdout["lead_id"])


def test_recent_closed_leads_weigh_more_the_less_time_they_had(
    candidate: TrainedCandidate,
) -> None:
    """Censoring weights: old leads count once, young wins more (slow outcomes are missing)."""
    rows = candidate.dataset
    assert rows[WEIGHT].min() == 1.0 and rows[WEIGHT].max() <= 10.0
    young = rows[CREATED_AT] > rows[OCCURRED_AT].max() - np.timedelta64(30, "D")
    won = rows[LABEL] == 1
    assert rows.loc[young & won, WEIGHT].mean() > rows.loc[young & ~won, WEIGHT].mean() > 1.0
    assert (
        rows.loc[~young & (rows[CREATED_AT] < rows[CREATED_AT].quantile(0.4)), WEIGHT] == 1
    ).all()


def test_training_is_deterministic(
    candidate: TrainedCandidate, trained: TrainedSetup, demo_schema: LeadSchema
) -> None:
    # Its own fit: determinism is a second fit on the same data giving the same model.
    again = train_candidate(trained.frames, demo_schema, TrainingConfig(), NOW)
    for name, evaluation in candidate.evaluations.items():
        assert again.evaluations[name].metrics == evaluation.metrics, name
    assert choose(again.fitted, SERVABLE) == choose(candidate.fitted, SERVABLE)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[tuple[MlflowClient, TrackingTarget]]:
    """An empty MLflow store of the test's own."""
    settings = make_settings(tmp_path)
    yield mlflow_client(settings.mlflow_tracking_uri), settings.tracking_target()


def test_the_gate_in_the_registry(
    registry: tuple[MlflowClient, TrackingTarget],
    candidate: TrainedCandidate,
    noisy_candidate: TrainedCandidate,
) -> None:
    client, target = registry
    name = target.model_name
    first = register_candidate(client, target, candidate, TrainingConfig(refit=False))
    assert first.promoted and "no champion yet" in first.decision.reason
    assert first.card.model_info.refit_leads is None

    # Version 1 never learnt from the holdout: compared on all of it, and as good.
    again = register_candidate(client, target, candidate)
    assert again.model_version == "2" and again.promoted  # as good: a retrain replaces it
    assert again.champion_metrics["roc_auc"] == pytest.approx(again.metrics["roc_auc"])
    assert f"on the {len(candidate.holdout):,} holdout leads it never saw" in again.decision.reason
    assert str(alias_version(client, name, CHAMPION).version) == "2"

    # Version 2 was refit on the holdout: it cannot be judged there, so the baselines decide.
    noise = register_candidate(client, target, noisy_candidate)
    assert noise.champion_metrics is None
    assert "not clearly better than the best baseline" in noise.decision.reason
    assert noise.model_version == "3" and not noise.promoted
    assert noise.metrics["roc_auc"] < again.metrics["roc_auc"] - 0.05
    assert str(alias_version(client, name, CHAMPION).version) == "2"
    assert str(alias_version(client, name, CHALLENGER).version) == "3"
    assert client.get_model_version(name, "3").tags["promoted"] == "false"
    assert champion_history(client, name) == ["1", "2"]


def test_promote_and_rollback_by_hand(
    registry: tuple[MlflowClient, TrackingTarget], candidate: TrainedCandidate
) -> None:
    client, target = registry
    name = target.model_name
    register_candidate(client, target, candidate)
    with pytest.raises(RegistryError, match="no earlier champion"):
        rollback(client, name, "ana", "nothing to undo")
    register_candidate(client, target, candidate)
    promote_by_hand(client, name, "1", "ana", "v2 mis-scores the partner channel")
    assert str(alias_version(client, name, CHAMPION).version) == "1"
    tags = client.get_model_version(name, "1").tags
    assert (tags["promoted_by"], tags["promoted_reason"]) == (
        "ana",
        "v2 mis-scores the partner channel",
    )
    promote_by_hand(client, name, "1", "ana", "clicked twice")  # already champion: no new step
    assert rollback(client, name, "bo", "partner issue was a data bug") == "2"
    assert str(alias_version(client, name, CHAMPION).version) == "2"
    assert client.get_model_version(name, "1").tags["rolled_back_by"] == "bo"
    with pytest.raises(RegistryError, match="no version 9"):
        promote_by_hand(client, name, "9", "ana", "typo")


def test_an_empty_store_is_refused_with_a_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    sessions = open_store(settings.database_url)
    with pytest.raises(NotEnoughDataError, match="too few"):
        train(settings, sessions)
    sessions.kw["bind"].dispose()


def test_too_few_outcomes_are_refused_with_what_is_missing(
    tmp_path: Path, demo_schema: LeadSchema
) -> None:
    settings = make_settings(tmp_path)
    sessions = open_store(settings.database_url)
    seed(sessions, generate_demo_funnel(400, seed=9), demo_schema)
    with sessions() as session:
        rows = build_training_set(training_frames(session), demo_schema)
    won, not_won = int(rows[LABEL].sum()), int((rows[LABEL] == 0).sum())
    assert won < 120 <= not_won
    with pytest.raises(NotEnoughDataError) as refused:
        train(settings, sessions)
    message = str(refused.value)
    assert f"{120 - won} more won and 0 more lost" in message and "rules score" in message
    sessions.kw["bind"].dispose()


def test_a_champion_this_leadloop_cannot_read_is_named_not_compared(
    registry: tuple[MlflowClient, TrackingTarget], candidate: TrainedCandidate
) -> None:
    """A registry written by an older leadloop: the run says so instead of failing."""
    client, target = registry
    register_candidate(client, target, candidate)
    uri = client.get_model_version_download_uri(target.model_name, "1")
    (document,) = Path(uri.removeprefix("file://")).rglob("scorer.json")
    document.write_text(document.read_text().replace('"format_version": 2', '"format_version": 1'))
    lookup = load_champion(client, target.model_name)
    assert lookup.champion is None and "format 1" in lookup.problem
    run = register_candidate(client, target, candidate)
    assert run.champion_version is None and run.champion_metrics is None
    assert "not compared" in run.decision.reason and "format 1" in run.decision.reason


def test_without_a_champion_the_lookup_has_no_problem(
    registry: tuple[MlflowClient, TrackingTarget],
) -> None:
    client, target = registry
    assert load_champion(client, target.model_name) == ChampionLookup(None)


def test_a_guard_that_leaves_no_field_is_refused_naming_each_field(
    trained: TrainedSetup, demo_schema: LeadSchema
) -> None:
    """Only the sales-filled rating offered to the model: the guard excludes it, and the
    error says which field was flagged and why."""
    document = demo_schema.model_dump()
    for field in document["fields"]:
        field["known_at_scoring"] = field["name"] == "sales_rating"
    only_the_leak = LeadSchema.model_validate(document)
    with pytest.raises(NotEnoughDataError, match="no model field is left") as raised:
        train_candidate(trained.frames, only_the_leak, TrainingConfig(), NOW)
    assert "- sales_rating: open vs closed" in str(raised.value)
    assert "accept_leak" in str(raised.value)
