"""Grades A-D from absolute probability cut-offs.

Absolute cut-offs keep a grade's meaning fixed: an "A" is a lead likely to convert, not the top
quarter of whatever arrived this week (relative tiers shift under their users).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GradeCutoffs:
    """Lowest probability of each grade; below `c` is D."""

    a: float = 0.40
    b: float = 0.20
    c: float = 0.08

    def __post_init__(self) -> None:
        if not 0.0 < self.c < self.b < self.a < 1.0:
            raise ValueError(f"grade cut-offs must satisfy 0 < C < B < A < 1, got {self}")

    def grade(self, probability: float) -> str:
        if probability >= self.a:
            return "A"
        if probability >= self.b:
            return "B"
        if probability >= self.c:
            return "C"
        return "D"

    def grades(self, probability: np.ndarray) -> np.ndarray:
        """The grade of every probability at once (`grade`, vectorised)."""
        p = np.asarray(probability, dtype=float)
        return np.select([p >= self.a, p >= self.b, p >= self.c], ["A", "B", "C"], "D")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradeCutoffs:
        return cls(**{k: float(v) for k, v in data.items()})


def derive_cutoffs(
    probability: np.ndarray,
    base_rate: float,
    leads_per_month: float,
    sales_capacity: int | None,
) -> GradeCutoffs:
    """Absolute cut-offs, fixed when the model is trained.

    A: with a sales capacity (leads a month), the best leads that capacity can work, read off
    recent leads' probabilities; without one, twice the base rate. B: better than the average
    lead (the base rate). C: at least half the base rate. D: the rest.
    """
    b = min(max(base_rate, 0.002), 0.9)
    if sales_capacity and leads_per_month > 0 and len(probability):
        share = min(sales_capacity / leads_per_month, 1.0)
        a = float(np.quantile(probability, 1.0 - share))
    else:
        a = 2.0 * b
    a = min(max(a, 1.25 * b), 0.99)
    return GradeCutoffs(a=round(a, 4), b=round(b, 4), c=round(b / 2, 4))
