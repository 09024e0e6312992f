"""Logistic regression over the shared feature encoding, with exact additive explanations.

Each encoded column becomes design terms: numbers as signed log1p, imputed and standardised,
plus a missing flag; categories one-hot. A linear margin splits exactly into per-term
contributions `w * (x - mean)`, with `intercept + w . mean` as the expected value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from features.encoding import FeatureEncoder
from models.explain import sum_by_field


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """Tame heavy tails (page views, company size) while keeping zero at zero."""
    return np.sign(values) * np.log1p(np.abs(values))


@dataclass(frozen=True)
class Term:
    """One design column: what it reads from the encoded row, and how it was centred."""

    column: int
    kind: Literal["value", "missing", "category"]
    code: float = 0.0  # the category code of a "category" term
    log: bool = False  # apply signed_log1p to a "value" term
    shift: float = 0.0  # training mean of the (log) value, also the imputed value
    scale: float = 1.0  # training standard deviation of the (log) value
    mean: float = 0.0  # training mean of the finished design column

    def read(self, rows: np.ndarray) -> np.ndarray:
        values = rows[:, self.column]
        if self.kind == "missing":
            return np.isnan(values).astype(float)
        if self.kind == "category":
            return (values == self.code).astype(float)
        values = signed_log1p(values) if self.log else values
        return (np.where(np.isnan(values), self.shift, values) - self.shift) / self.scale


@dataclass(frozen=True, eq=False)
class LinearModel:
    kind: ClassVar[str] = "logistic_regression"
    encoder: FeatureEncoder
    terms: tuple[Term, ...]
    weights: np.ndarray
    intercept: float

    def design(self, rows: np.ndarray) -> np.ndarray:
        return np.column_stack([t.read(rows) for t in self.terms]) if self.terms else rows[:, :0]

    def margin(self, rows: np.ndarray) -> np.ndarray:
        return self.design(rows) @ self.weights + self.intercept

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        means = np.array([t.mean for t in self.terms])
        per_term = (self.design(rows) - means) * self.weights
        term_fields = [self.encoder.feature_names[t.column] for t in self.terms]
        by_field = sum_by_field(per_term, term_fields, self.encoder.fields)
        expected = np.full(len(rows), self.intercept + float(self.weights @ means))
        return np.column_stack([by_field, expected])

    def to_config(self, directory: Path) -> dict[str, Any]:
        return {
            "terms": [asdict(t) for t in self.terms],
            "weights": self.weights.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_config(
        cls, encoder: FeatureEncoder, config: dict[str, Any], directory: Path
    ) -> LinearModel:
        return cls(
            encoder,
            tuple(Term(**t) for t in config["terms"]),
            np.asarray(config["weights"], dtype=float),
            float(config["intercept"]),
        )
