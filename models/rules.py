"""A points score of the kind marketing teams write by hand, with exact explanations.

Points per level of a few fields (source, lead type, engagement buckets), summed. Each
field's contribution is its points minus its average points, times the points' scale in
log-odds, so rules explain themselves in the same score points as the models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from features.encoding import FeatureEncoder
from models.explain import sum_by_field

#: One point is a tenth of a unit of log-odds, as in hand-made scorecards.
POINT = 0.1


@dataclass(frozen=True)
class PointsTable:
    """Points for one encoded column: per category code, or per bucket between edges."""

    column: int
    edges: tuple[float, ...] = ()  # numeric buckets; empty for categories and booleans
    points: dict[str, int] | None = None  # level -> points; unknown levels score 0
    missing: int = 0
    mean: float = 0.0  # average points over the training leads

    def level(self, value: float) -> str:
        if self.edges:
            return str(int(np.searchsorted(self.edges, value, side="right")))
        return str(int(value))

    def read(self, rows: np.ndarray) -> np.ndarray:
        table = self.points or {}
        values = rows[:, self.column]
        return np.array(
            [self.missing if np.isnan(v) else table.get(self.level(v), 0) for v in values],
            dtype=float,
        )


@dataclass(frozen=True)
class PointsRules:
    kind: ClassVar[str] = "rules"
    encoder: FeatureEncoder
    tables: tuple[PointsTable, ...]
    offset: float

    def margin(self, rows: np.ndarray) -> np.ndarray:
        return self.contributions(rows).sum(axis=1)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        points = np.column_stack(
            [POINT * (t.read(rows) - t.mean) for t in self.tables] or [np.zeros((len(rows), 0))]
        )
        table_fields = [self.encoder.feature_names[t.column] for t in self.tables]
        by_field = sum_by_field(points, table_fields, self.encoder.fields)
        expected = np.full(len(rows), self.offset + POINT * sum(t.mean for t in self.tables))
        return np.column_stack([by_field, expected])

    def to_config(self, directory: Path) -> dict[str, Any]:
        return {"tables": [asdict(t) for t in self.tables], "offset": self.offset}

    @classmethod
    def from_config(
        cls, encoder: FeatureEncoder, config: dict[str, Any], directory: Path
    ) -> PointsRules:
        tables = tuple(PointsTable(**(t | {"edges": tuple(t["edges"])})) for t in config["tables"])
        return cls(encoder, tables, float(config["offset"]))
