"""Fit the scorer: encoder and LightGBM on older leads, early stopping and calibration on newer."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.encoding import fit_encoder
from features.schema import LeadSchema
from models.calibration import fit_platt
from models.grades import GradeCutoffs
from models.scorer import Scorer
from training.dataset import LABEL

_MONOTONE = {"increasing": 1, "decreasing": -1, None: 0}


@dataclass(frozen=True)
class BoosterConfig:
    """LightGBM settings; small leaves and strong smoothing suit noisy conversion labels."""

    learning_rate: float = 0.03
    num_leaves: int = 15
    min_data_in_leaf: int = 60
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 5.0
    cat_smooth: float = 20.0
    max_rounds: int = 3000
    early_stopping_rounds: int = 150
    seed: int = 0

    def lightgbm_params(self, monotone_constraints: list[int]) -> dict[str, Any]:
        params = asdict(self)
        for key in ("max_rounds", "early_stopping_rounds"):
            params.pop(key)
        return params | {
            "objective": "binary",
            "metric": "binary_logloss",
            "monotone_constraints": monotone_constraints,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": os.cpu_count() or 1,
            "verbosity": -1,
        }


@dataclass(frozen=True)
class FittedScorer:
    scorer: Scorer
    best_iteration: int
    params: dict[str, Any]


def records(rows: pd.DataFrame, fields: list[str]) -> list[dict[str, Any]]:
    """Rows of a training frame as the lead mappings the encoder takes."""
    return rows[fields].to_dict(orient="records")


def fit_scorer(
    schema: LeadSchema,
    fit_rows: pd.DataFrame,
    valid_rows: pd.DataFrame,
    config: BoosterConfig,
    grades: GradeCutoffs,
    exclude: frozenset[str] = frozenset(),
) -> FittedScorer:
    """Fit encoder and booster on `fit_rows`; stop early and calibrate on `valid_rows`."""
    fields = [f.name for f in schema.model_fields_in_order if f.name not in exclude]
    fit_leads, valid_leads = records(fit_rows, fields), records(valid_rows, fields)
    encoder = fit_encoder(schema, fit_leads, exclude=exclude)
    monotone = [_MONOTONE[schema.by_name[name].monotone] for name in encoder.feature_names]
    params = config.lightgbm_params(monotone)
    dataset_params = {"feature_pre_filter": False}
    train = lgb.Dataset(
        encoder.encode(fit_leads),
        label=fit_rows[LABEL].to_numpy(),
        # LightGBM refuses some characters in names; the encoder keeps the real ones.
        feature_name=[f"column_{i}" for i in range(len(encoder.columns))],
        categorical_feature=encoder.categorical_indices,
        params=dataset_params,
        free_raw_data=False,
    )
    valid_x = encoder.encode(valid_leads)
    valid = lgb.Dataset(
        valid_x, label=valid_rows[LABEL].to_numpy(), reference=train, params=dataset_params
    )
    booster = lgb.train(
        params,
        train,
        num_boost_round=config.max_rounds,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    booster.free_dataset()
    # Keep only the trees up to the best iteration, so every later predict uses exactly them.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    margin = booster.predict(valid_x, raw_score=True)
    calibration = fit_platt(np.asarray(margin), valid_rows[LABEL].to_numpy())
    scorer = Scorer(schema, encoder, booster, calibration, grades)
    return FittedScorer(scorer, booster.num_trees(), params)
