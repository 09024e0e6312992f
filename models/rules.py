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
        fields = self.encoder.fields
        index = {name: i for i, name in enumerate(fields)}
        by_field = np.zeros((len(rows), len(fields) + 1))
        for table in self.tables:
            name = self.encoder.feature_names[table.column]
            by_field[:, index[name]] += POINT * (table.read(rows) - table.mean)
        by_field[:, -1] = self.offset + POINT * sum(t.mean for t in self.tables)
        return by_field

    def to_config(self, directory: Path) -> dict[str, Any]:
        return {"tables": [asdict(t) for t in self.tables], "offset": self.offset}

    @classmethod
    def from_config(
        cls, encoder: FeatureEncoder, config: dict[str, Any], directory: Path
    ) -> PointsRules:
        tables = tuple(PointsTable(**(t | {"edges": tuple(t["edges"])})) for t in config["tables"])
        return cls(encoder, tables, float(config["offset"]))
