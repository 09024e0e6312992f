"""Training runs end to end: choices, the promotion gate in the registry, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import (
    CHALLENGER,
    CHAMPION,
    RegistryError,
    alias_version,
    champion_history,
    mlflow_client,
    promote_by_hand,
    rollback,
)
from store.demo_funnel import DemoFunnel, generate_demo_funnel
from store.repository import training_frames
from store.tables import Lead, OutcomeEvent
from tests.support import NOW, TrainedSetup, make_settings, open_store, seed, train_setup
from training.candidates import BASELINES, SERVABLE
from training.dataset import AS_OF, CREATED_AT, LABEL, OCCURRED_AT, WEIGHT, build_training_set
from training.metrics import METRIC_NAMES
from training.pipeline import TrainedCandidate, TrainingConfig, train_candidate
from training.run import train_and_register
from training.split import NotEnoughDataError


@pytest.fixture(scope="module")
def candidate(trained: TrainedSetup, demo_schema: LeadSchema) -> TrainedCandidate:
    with trained.sessions() as session:
        frames = training_frames(session)
    return train_candidate(frames, demo_schema, TrainingConfig(), NOW)


def test_every_candidate_and_baseline_is_measured_on_the_same_holdout(
    candidate: TrainedCandidate,
) -> None:
    assert set(candidate.evaluations) == set(SERVABLE) | set(BASELINES)
    for evaluation in candidate.evaluations.values():
        assert tuple(evaluation.metrics) == METRIC_NAMES
        assert len(evaluation.probability) == len(candidate.holdout)
    assert candidate.evaluations["base_rate"].metrics["roc_auc"] == 0.5
    assert candidate.chosen in SERVABLE
    assert candidate.card["baselines"]["rules"]["holdout"] == (
        candidate.evaluations["rules"].metrics
    )


def test_the_challenger_is_the_best_servable_model_on_validation(
    candidate: TrainedCandidate,
) -> None:
    validation = {n: candidate.evaluations[n].validation_auc for n in SERVABLE}
    assert validation[candidate.chosen] == max(validation.values())


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
    with trained.sessions() as session:
        again = train_candidate(training_frames(session), demo_schema, TrainingConfig(), NOW)
    assert again.metrics == candidate.metrics and again.chosen == candidate.chosen


@pytest.fixture
def setup(
    tmp_path: Path, small_funnel: DemoFunnel, demo_schema: LeadSchema
) -> Iterator[TrainedSetup]:
    """A store and MLflow registry of its own, with version 1 already champion."""
    fresh = train_setup(tmp_path, small_funnel, demo_schema)
    yield fresh
    fresh.close()


def shuffle_old_outcomes(sessions: sessionmaker[Session], before_share: float = 0.75) -> None:
    """Permute outcomes among the older leads: a challenger trained on noise, judged on truth."""
    with sessions.begin() as session:
        rows = session.execute(
            select(OutcomeEvent.id, OutcomeEvent.outcome, Lead.created_at)
            .join(Lead, Lead.lead_id == OutcomeEvent.lead_id)
            .order_by(Lead.created_at)
        ).all()
        old = rows[: int(len(rows) * before_share)]
        permuted = np.random.default_rng(0).permutation([r.outcome for r in old])
        session.execute(
            update(OutcomeEvent),
            [{"id": r.id, "outcome": str(o)} for r, o in zip(old, permuted, strict=True)],
        )


def test_the_gate_in_the_registry(setup: TrainedSetup) -> None:
    client = mlflow_client(setup.settings.mlflow_tracking_uri)
    name = setup.settings.model_name
    assert setup.run.promoted and "no champion yet" in setup.run.decision.reason

    again = train_and_register(setup.settings, setup.sessions, NOW)
    assert again.model_version == "2" and again.promoted  # as good, on more recent data
    assert again.champion_metrics["roc_auc"] == pytest.approx(again.metrics["roc_auc"])
    assert str(alias_version(client, name, CHAMPION).version) == "2"

    shuffle_old_outcomes(setup.sessions)
    noise = train_and_register(setup.settings, setup.sessions, NOW)
    assert noise.model_version == "3" and not noise.promoted
    assert noise.metrics["roc_auc"] < again.metrics["roc_auc"] - 0.05
    assert str(alias_version(client, name, CHAMPION).version) == "2"
    assert str(alias_version(client, name, CHALLENGER).version) == "3"
    assert client.get_model_version(name, "3").tags["promoted"] == "false"
    assert champion_history(client, name) == ["1", "2"]


def test_promote_and_rollback_by_hand(setup: TrainedSetup) -> None:
    client = mlflow_client(setup.settings.mlflow_tracking_uri)
    name = setup.settings.model_name
    with pytest.raises(RegistryError, match="no earlier champion"):
        rollback(client, name, "ana", "nothing to undo")
    train_and_register(setup.settings, setup.sessions, NOW)
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
        train_and_register(settings, sessions, NOW)
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
        train_and_register(settings, sessions, NOW)
    message = str(refused.value)
    assert f"{120 - won} more won and 0 more lost" in message and "rules score" in message
    sessions.kw["bind"].dispose()


def test_a_champion_this_leadloop_cannot_read_is_named_not_compared(setup: TrainedSetup) -> None:
    """A registry written by an older leadloop: the run says so instead of failing."""
    client = mlflow_client(setup.settings.mlflow_tracking_uri)
    uri = client.get_model_version_download_uri(setup.settings.model_name, "1")
    (document,) = Path(uri.removeprefix("file://")).rglob("scorer.json")
    document.write_text(document.read_text().replace('"format_version": 2', '"format_version": 1'))
    run = train_and_register(setup.settings, setup.sessions, NOW)
    assert run.champion_version is None
    assert "could not be loaded" in run.decision.reason and "format 1" in run.decision.reason


def test_a_guard_that_leaves_no_field_is_refused(
    trained: TrainedSetup, demo_schema: LeadSchema
) -> None:
    from training.candidates import CandidateConfig, fit_all

    with trained.sessions() as session:
        rows = build_training_set(training_frames(session), demo_schema)
    rows[WEIGHT] = 1.0
    every_field = frozenset(f.name for f in demo_schema.model_fields_in_order)
    with pytest.raises(NotEnoughDataError, match="no model field is left"):
        fit_all(demo_schema, rows, rows, CandidateConfig(), every_field)
