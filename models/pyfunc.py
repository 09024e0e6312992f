"""MLflow `python_function` flavour of a saved scorer.

MLflow imports this module by name (`loader_module`) from the code logged with the model, so
`mlflow models serve` and `mlflow.pyfunc.load_model` run the same encoder and booster as the
leadloop service, without pickled objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from models.scorer import Scorer


class ScorerPyfunc:
    """Adapter from MLflow's DataFrame-in/DataFrame-out contract to the scorer."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer

    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        leads = model_input.to_dict(orient="records")
        probability = self.scorer.predict_proba(leads)
        return pd.DataFrame(
            {
                "probability": probability,
                "score": (100.0 * probability).round().clip(0, 100).astype("int64"),
                "grade": [self.scorer.grades.grade(float(p)) for p in probability],
            }
        )


def _load_pyfunc(data_path: str) -> ScorerPyfunc:
    return ScorerPyfunc(Scorer.load(Path(data_path)))
