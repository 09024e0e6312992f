"""From stored closed leads to an evaluated candidate scorer (no I/O: the caller reads the store).

Leads are ordered by the time their features were known. The newest `holdout_fraction` is the
holdout, touched only to measure the finished model. Within the older leads, the newest
`validation_fraction` stops the boosting and fits the calibration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features.schema import LeadSchema
from models.grades import GradeCutoffs
from models.scorer import Scorer
from store.repository import TrainingFrames
from training.dataset import AS_OF, LABEL, build_training_set, open_lead_rows
from training.fit import BoosterConfig, fit_scorer, records
from training.leakage import Leak, find_leaks
from training.metrics import holdout_metrics
from training.split import time_split


@dataclass(frozen=True)
class TrainingConfig:
    holdout_fraction: float = 0.2
    validation_fraction: float = 0.15
    booster: BoosterConfig = field(default_factory=BoosterConfig)
    grades: GradeCutoffs = field(default_factory=GradeCutoffs)


@dataclass(frozen=True)
class TrainedCandidate:
    scorer: Scorer
    metrics: dict[str, float]
    dataset: pd.DataFrame
    train: pd.DataFrame  # fitting plus validation leads
    holdout: pd.DataFrame
    holdout_probability: np.ndarray
    card: dict[str, Any]
    leaks: list[Leak]


def _window(rows: pd.DataFrame) -> dict[str, str]:
    return {"start": rows[AS_OF].min().isoformat(), "end": rows[AS_OF].max().isoformat()}


def holdout_leads(candidate: TrainedCandidate) -> list[dict[str, Any]]:
    """The holdout as lead mappings, for scoring it with another model (the champion)."""
    return records(candidate.holdout, candidate.scorer.feature_fields)


def train_candidate(
    frames: TrainingFrames,
    schema: LeadSchema,
    config: TrainingConfig,
    trained_at: datetime,
) -> TrainedCandidate:
    """Build the point-in-time dataset, split it in time, fit, calibrate and evaluate."""
    dataset = build_training_set(frames, schema)
    outer = time_split(dataset, config.holdout_fraction)
    leaks = find_leaks(schema, outer.older, outer.newer, open_lead_rows(frames, schema))
    excluded = frozenset(leak.field for leak in leaks if leak.excluded)
    inner = time_split(outer.older, config.validation_fraction)
    fitted = fit_scorer(
        schema, inner.older, inner.newer, config.booster, config.grades, exclude=excluded
    )
    probability = fitted.scorer.predict_proba(records(outer.newer, fitted.scorer.feature_fields))
    metrics = holdout_metrics(outer.newer[LABEL].to_numpy(), probability)
    train = pd.concat([inner.older, inner.newer], ignore_index=True)
    card = {
        "trained_at": trained_at.isoformat(),
        "training_window": _window(train),
        "holdout_window": _window(outer.newer),
        "n_train": len(train),
        "n_fit": len(inner.older),
        "n_validation": len(inner.newer),
        "n_holdout": len(outer.newer),
        "train_win_rate": float(train[LABEL].mean()),
        "best_iteration": fitted.best_iteration,
        "leaks": [leak.to_dict() for leak in leaks],
        "metrics": metrics,
        "lightgbm_params": fitted.params,
    }
    return TrainedCandidate(
        scorer=dataclasses.replace(fitted.scorer, card=card),
        metrics=metrics,
        dataset=dataset,
        train=train,
        holdout=outer.newer,
        holdout_probability=probability,
        card=card,
        leaks=leaks,
    )
