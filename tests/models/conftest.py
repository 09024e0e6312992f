"""Fixtures of the model tests: one scorer of every kind, from the session's training run."""

from __future__ import annotations

import pytest

from models.scorer import Scorer
from tests.support import TrainedSetup

KINDS = ("rules", "logistic_regression", "lightgbm", "lightgbm_recency")


@pytest.fixture(scope="session")
def scorers(trained: TrainedSetup) -> dict[str, Scorer]:
    """Every model kind a run fits, calibrated and graded, on the small demo funnel."""
    return {name: fitted.scorer for name, fitted in trained.run.candidate.fitted.items()}
