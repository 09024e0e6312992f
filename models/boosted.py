"""Gradient-boosted trees (LightGBM) with exact TreeSHAP explanations."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np

from features.encoding import FeatureEncoder
from models.explain import sum_by_field
from models.single_row import SingleRowPredictor

BOOSTER_FILE = "booster.txt"
#: Up to this many rows one thread is fastest: OpenMP start-up costs more than the work.
_SINGLE_THREAD_ROWS = 64


def _threads(n_rows: int) -> int:
    return 1 if n_rows <= _SINGLE_THREAD_ROWS else (os.cpu_count() or 1)


@dataclass(frozen=True)
class BoostedTrees:
    kind: ClassVar[str] = "lightgbm"
    encoder: FeatureEncoder
    booster: lgb.Booster
    #: One lead at a time (the API's usual request) skips `Booster.predict`'s per-call set-up.
    _one_margin: SingleRowPredictor = field(init=False, repr=False, compare=False)
    _one_contrib: SingleRowPredictor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_one_margin", SingleRowPredictor(self.booster, False))
        object.__setattr__(self, "_one_contrib", SingleRowPredictor(self.booster, True))

    def margin(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 1:
            return self._one_margin(rows[0])
        return self.booster.predict(rows, raw_score=True, num_threads=_threads(len(rows)))

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """TreeSHAP per field, expected value last; each row sums to its margin."""
        if len(rows) == 1:
            contrib = self._one_contrib(rows[0])[None, :]
        else:
            contrib = self.booster.predict(rows, pred_contrib=True, num_threads=_threads(len(rows)))
        by_field = sum_by_field(contrib[:, :-1], self.encoder.feature_names, self.encoder.fields)
        return np.column_stack([by_field, contrib[:, -1]])

    def to_config(self, directory: Path) -> dict[str, Any]:
        self.booster.save_model(directory / BOOSTER_FILE)
        return {"booster_file": BOOSTER_FILE}

    @classmethod
    def from_config(
        cls, encoder: FeatureEncoder, config: dict[str, Any], directory: Path
    ) -> BoostedTrees:
        return cls(encoder, lgb.Booster(model_file=directory / config["booster_file"]))
