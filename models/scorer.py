"""The scorer: feature encoder + a margin model + calibration + grades, saved as plain files.

The margin model is LightGBM, a logistic regression or a points score; each turns encoded rows
into a log-odds margin and splits that margin exactly into per-field contributions. Everything
after the margin (calibration, score, grade, reasons in score points) is shared.

A saved scorer is a directory of text: the model's own files (LightGBM's text format for
trees) and one JSON file with the schema, the fitted encoder, the model's parameters,
calibration, grade cut-offs and the model card. No pickles, so a model logged today loads in
any later process that has the same code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np

from features.encoding import FeatureEncoder
from features.schema import LeadSchema
from models.boosted import BoostedTrees
from models.calibration import PlattCalibration
from models.card import ModelCard
from models.explain import Reason, to_score_points, top_reasons
from models.grades import GradeCutoffs
from models.linear import LinearModel
from models.rules import PointsRules

FORMAT_VERSION = 2
SCORER_FILE = "scorer.json"


class MarginModel(Protocol):
    """What every model kind provides to the scorer."""

    kind: str
    encoder: FeatureEncoder

    def margin(self, rows: np.ndarray) -> np.ndarray: ...

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Per field of `encoder.fields`, expected value last; each row sums to its margin."""
        ...

    def to_config(self, directory: Path) -> dict[str, Any]: ...


MODEL_KINDS: dict[str, Any] = {kind.kind: kind for kind in (BoostedTrees, LinearModel, PointsRules)}


class ScorerFormatError(ValueError):
    """A saved scorer is missing a file or was written by an incompatible version."""


@dataclass(frozen=True)
class LeadScore:
    probability: float
    score: int
    grade: str
    #: None when the score was asked for alone.
    reasons: list[Reason] | None


@dataclass(frozen=True)
class ScoreColumns:
    """Probability, score and grade of many leads at once, without reasons (files of leads)."""

    probability: np.ndarray
    score: np.ndarray
    grade: np.ndarray


def to_score(probability: float | np.ndarray) -> np.ndarray | np.floating:
    """The 0-100 score of a probability (or of an array of them), as a float."""
    return np.clip(np.rint(100.0 * probability), 0, 100)


@dataclass(frozen=True)
class Scorer:
    schema: LeadSchema
    model: MarginModel
    calibration: PlattCalibration
    grades: GradeCutoffs
    #: Set on the scorer a run chooses; the other fitted candidates have none.
    card: ModelCard | None = None

    @property
    def encoder(self) -> FeatureEncoder:
        return self.model.encoder

    @property
    def feature_fields(self) -> list[str]:
        """Schema fields the model reads (the guard may have excluded some of the schema's)."""
        return self.encoder.fields

    def margin(self, rows: np.ndarray) -> np.ndarray:
        """Log-odds before calibration of encoded rows."""
        return self.model.margin(rows)

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """Per-field contributions to the margin, expected value last."""
        return self.model.contributions(rows)

    def predict_proba(self, leads: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Calibrated conversion probability of raw leads."""
        return self.calibration.probability(self.margin(self.encoder.encode(leads)))

    def score(
        self, leads: Sequence[Mapping[str, Any]], reasons: bool = True, per_direction: int = 3
    ) -> list[LeadScore]:
        """Probability, 0-100 score, grade and (when `reasons`) top reasons of each raw lead.

        Without reasons only the margin is computed: for trees a plain prediction, about a
        fifteenth of the cost of the per-field contributions reasons need.
        """
        rows = self.encoder.encode(leads)
        if not reasons:
            return [
                self._lead_score(p, None) for p in self.calibration.probability(self.margin(rows))
            ]
        contrib = self.contributions(rows)
        margin, expected = contrib.sum(axis=1), contrib[:, -1]
        points = to_score_points(contrib[:, :-1], margin, expected, self.calibration)
        fields = self.feature_fields
        return [
            self._lead_score(p, top_reasons(points[i], fields, lead, per_direction))
            for i, (p, lead) in enumerate(
                zip(self.calibration.probability(margin), leads, strict=True)
            )
        ]

    def score_rows(self, rows: np.ndarray) -> ScoreColumns:
        """Probability, score and grade of encoded rows, a column at a time (no per-lead
        objects: a file's chunk of leads costs little more than its prediction)."""
        probability = self.calibration.probability(self.margin(rows))
        return ScoreColumns(
            probability, to_score(probability).astype(np.int64), self.grades.grades(probability)
        )

    def _lead_score(self, probability: float, reasons: list[Reason] | None) -> LeadScore:
        p = float(probability)
        score = int(to_score(p))
        return LeadScore(probability=p, score=score, grade=self.grades.grade(p), reasons=reasons)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "format_version": FORMAT_VERSION,
            "kind": self.model.kind,
            "schema": self.schema.model_dump(mode="json"),
            "encoder": self.encoder.to_dict(),
            "model": self.model.to_config(directory),
            "calibration": self.calibration.to_dict(),
            "grades": self.grades.to_dict(),
            "card": self.card.model_dump(mode="json") if self.card else None,
        }
        (directory / SCORER_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Scorer:
        try:
            document = json.loads((directory / SCORER_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ScorerFormatError(f"cannot load scorer from {directory}: {exc}") from exc
        if document.get("format_version") != FORMAT_VERSION:
            raise ScorerFormatError(
                f"scorer format {document.get('format_version')!r} in {directory}; "
                f"this leadloop reads format {FORMAT_VERSION}"
            )
        kind = MODEL_KINDS.get(document.get("kind"))
        if kind is None:
            raise ScorerFormatError(f"unknown model kind {document.get('kind')!r}")
        try:
            encoder = FeatureEncoder.from_dict(document["encoder"])
            return cls(
                schema=LeadSchema.model_validate(document["schema"]),
                model=kind.from_config(encoder, document["model"], directory),
                calibration=PlattCalibration.from_dict(document["calibration"]),
                grades=GradeCutoffs.from_dict(document["grades"]),
                card=ModelCard.model_validate(document["card"]) if document["card"] else None,
            )
        except (OSError, lgb.basic.LightGBMError, KeyError, TypeError, ValueError) as exc:
            raise ScorerFormatError(f"cannot load scorer from {directory}: {exc}") from exc
