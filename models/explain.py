"""Reasons behind a score, from exact per-field contributions to the model's margin.

Every model kind splits each lead's margin (log-odds) into one contribution per field plus an
expected value that add up exactly (LightGBM through TreeSHAP, the regression and the points
score by construction). Sales reps think in score points, not log-odds, so each
lead's contributions are rescaled by one factor: the secant slope of the calibrated sigmoid
between the expected margin and the lead's margin. The factor is positive, keeps every sign and
ratio, and makes the points add up exactly to `score_points(lead) - score_points(average lead)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.calibration import PlattCalibration

#: Contributions smaller than this many score points are noise, not reasons.
MIN_REASON_POINTS = 0.05
#: Below this margin difference the secant slope is replaced by its limit, the derivative.
_FLAT = 1e-9


@dataclass(frozen=True)
class Reason:
    field: str
    value: Any
    impact: float


def sum_by_field(
    contributions: np.ndarray, column_fields: Sequence[str], fields: Sequence[str]
) -> np.ndarray:
    """Add up column contributions per schema field (a field may feed several columns)."""
    index = {name: i for i, name in enumerate(fields)}
    by_field = np.zeros((contributions.shape[0], len(fields)))
    for j, name in enumerate(column_fields):
        by_field[:, index[name]] += contributions[:, j]
    return by_field


def to_score_points(
    by_field: np.ndarray,
    margin: np.ndarray,
    expected: np.ndarray,
    calibration: PlattCalibration,
) -> np.ndarray:
    """Rescale log-odds contributions to score points (100 x probability) that add up exactly."""
    p = calibration.probability(margin)
    p0 = calibration.probability(expected)
    dz = margin - expected
    flat = np.abs(dz) < _FLAT
    derivative = calibration.slope * p0 * (1.0 - p0)
    slope = np.where(flat, derivative, (p - p0) / np.where(flat, 1.0, dz))
    return 100.0 * by_field * slope[:, None]


def top_reasons(
    points: np.ndarray,
    fields: Sequence[str],
    lead: Mapping[str, Any],
    per_direction: int = 3,
) -> list[Reason]:
    """The largest positive then the largest negative contributions of one lead."""
    order = np.argsort(-points)
    positive = [j for j in order if points[j] >= MIN_REASON_POINTS][:per_direction]
    negative = [j for j in order[::-1] if points[j] <= -MIN_REASON_POINTS][:per_direction]
    return [
        Reason(field=fields[j], value=lead.get(fields[j]), impact=round(float(points[j]), 1))
        for j in positive + negative
    ]
