"""Fixtures of the model tests: one scorer of every kind, fitted on the small demo funnel."""

from __future__ import annotations

import pytest

from features.schema import LeadSchema
from models.scorer import Scorer
from store.repository import training_frames
from tests.support import NOW, TrainedSetup
from training.pipeline import TrainingConfig, train_candidate

KINDS = ("rules", "logistic_regression", "lightgbm", "lightgbm_recency")


@pytest.fixture(scope="session")
def scorers(trained: TrainedSetup, demo_schema: LeadSchema) -> dict[str, Scorer]:
    """Every model kind a run fits, calibrated, on the small demo funnel."""
    with trained.sessions() as session:
        candidate = train_candidate(training_frames(session), demo_schema, TrainingConfig(), NOW)
    return {name: fitted.scorer for name, fitted in candidate.fitted.items()}
