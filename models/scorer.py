"""The scorer: feature encoder + LightGBM booster + calibration + grades, saved as plain files.

A saved scorer is a directory of text: the booster in LightGBM's own model format and one JSON
file with the schema, the fitted feature encoder, calibration, grade cut-offs and the model card.
No pickles, so a model logged today loads in any later process that has the same code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from features.encoding import FeatureEncoder
from features.schema import LeadSchema
from models.calibration import PlattCalibration
from models.explain import Reason, sum_by_field, to_score_points, top_reasons
from models.grades import GradeCutoffs

FORMAT_VERSION = 1
BOOSTER_FILE = "booster.txt"
SCORER_FILE = "scorer.json"
#: Up to this many rows one thread is fastest: OpenMP start-up costs more than the work.
_SINGLE_THREAD_ROWS = 64


class ScorerFormatError(ValueError):
    """A saved scorer is missing a file or was written by an incompatible version."""


@dataclass(frozen=True)
class LeadScore:
    probability: float
    score: int
    grade: str
    reasons: list[Reason]


@dataclass(frozen=True)
class Scorer:
    schema: LeadSchema
    encoder: FeatureEncoder
    booster: lgb.Booster
    calibration: PlattCalibration
    grades: GradeCutoffs
    card: dict[str, Any] = field(default_factory=dict)

    def _threads(self, n_rows: int) -> int:
        return 1 if n_rows <= _SINGLE_THREAD_ROWS else (os.cpu_count() or 1)

    def margin(self, rows: np.ndarray) -> np.ndarray:
        """Raw booster margin (log-odds before calibration) of encoded rows."""
        return self.booster.predict(rows, raw_score=True, num_threads=self._threads(len(rows)))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions per column, expected value last; each row sums to its margin."""
        return self.booster.predict(rows, pred_contrib=True, num_threads=self._threads(len(rows)))

    def predict_proba(self, leads: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Calibrated conversion probability of raw leads."""
        return self.calibration.probability(self.margin(self.encoder.encode(leads)))

    def score(self, leads: Sequence[Mapping[str, Any]], per_direction: int = 3) -> list[LeadScore]:
        """Probability, 0-100 score, grade and top reasons of each raw lead."""
        contrib = self.contributions(self.encoder.encode(leads))
        margin, expected = contrib.sum(axis=1), contrib[:, -1]
        fields = self.feature_fields
        by_field = sum_by_field(contrib[:, :-1], self.encoder.feature_names, fields)
        points = to_score_points(by_field, margin, expected, self.calibration)
        probabilities = self.calibration.probability(margin)
        return [
            LeadScore(
                probability=float(p),
                score=int(np.clip(np.rint(100.0 * p), 0, 100)),
                grade=self.grades.grade(float(p)),
                reasons=top_reasons(points[i], fields, lead, per_direction),
            )
            for i, (p, lead) in enumerate(zip(probabilities, leads, strict=True))
        ]

    @property
    def feature_fields(self) -> list[str]:
        """Schema fields the model reads (the guard may have excluded some of the schema's)."""
        return self.encoder.fields

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(directory / BOOSTER_FILE)
        document = {
            "format_version": FORMAT_VERSION,
            "schema": self.schema.model_dump(mode="json"),
            "encoder": self.encoder.to_dict(),
            "calibration": self.calibration.to_dict(),
            "grades": self.grades.to_dict(),
            "card": self.card,
        }
        (directory / SCORER_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Scorer:
        try:
            document = json.loads((directory / SCORER_FILE).read_text(encoding="utf-8"))
            booster = lgb.Booster(model_file=directory / BOOSTER_FILE)
        except (OSError, lgb.basic.LightGBMError, json.JSONDecodeError) as exc:
            raise ScorerFormatError(f"cannot load scorer from {directory}: {exc}") from exc
        if document.get("format_version") != FORMAT_VERSION:
            raise ScorerFormatError(
                f"scorer format {document.get('format_version')!r} in {directory}; "
                f"this leadloop reads format {FORMAT_VERSION}"
            )
        return cls(
            schema=LeadSchema.model_validate(document["schema"]),
            encoder=FeatureEncoder.from_dict(document["encoder"]),
            booster=booster,
            calibration=PlattCalibration.from_dict(document["calibration"]),
            grades=GradeCutoffs.from_dict(document["grades"]),
            card=document["card"],
        )
