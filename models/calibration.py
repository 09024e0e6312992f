"""Platt scaling of a model's margin.

A sigmoid of an affine map keeps the calibrated log-odds linear in the model's margin, so the
per-field contributions stay exact after calibration (see `models.explain`). Isotonic
regression would not: it is a step function of the margin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import LogisticRegression


@dataclass(frozen=True)
class PlattCalibration:
    """Calibrated probability = sigmoid(slope * margin + intercept)."""

    slope: float = 1.0
    intercept: float = 0.0

    def probability(self, margin: np.ndarray) -> np.ndarray:
        return expit(self.slope * margin + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlattCalibration:
        return cls(float(data["slope"]), float(data["intercept"]))


def fit_platt(
    margin: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> PlattCalibration:
    """Fit the sigmoid on held-out margins (unpenalised: the data decides the slope).

    A slope below zero would mean the model ranks leads backwards on held-out data; flipping it
    would also flip every explanation. Such a model gets slope 0: it predicts the base rate.
    """
    lr = LogisticRegression(C=np.inf).fit(margin.reshape(-1, 1), y, sample_weight=weights)
    slope = float(lr.coef_[0, 0])
    if slope > 0:
        return PlattCalibration(slope=slope, intercept=float(lr.intercept_[0]))
    rate = float(np.average(y, weights=weights))
    return PlattCalibration(slope=0.0, intercept=float(np.log(rate / (1.0 - rate))))
