"""Grades A-D from absolute probability cut-offs.

Absolute cut-offs keep a grade's meaning fixed: an "A" is a lead likely to convert, not the top
quarter of whatever arrived this week (relative tiers shift under their users).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradeCutoffs:
        return cls(**{k: float(v) for k, v in data.items()})
