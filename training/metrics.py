"""Holdout metrics of conversion probabilities (pure functions)."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_at_10")


def lift_at(y: np.ndarray, probability: np.ndarray, fraction: float) -> float:
    """Win rate among the top `fraction` of leads by probability, over the overall win rate."""
    n_top = max(1, math.ceil(len(y) * fraction))
    top = np.argsort(-probability, kind="stable")[:n_top]
    return float(np.mean(y[top]) / np.mean(y))


def holdout_metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    y = np.asarray(y)
    probability = np.asarray(probability, dtype=float)
    return {
        "roc_auc": float(roc_auc_score(y, probability)),
        "pr_auc": float(average_precision_score(y, probability)),
        "log_loss": float(log_loss(y, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(y, probability)),
        "lift_at_10": lift_at(y, probability, 0.10),
    }
