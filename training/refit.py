"""The served model learns from the newest leads: the gate's choice, refit on every closed lead.

The holdout is the newest fifth of the closed leads; a model that never learns from it serves
a funnel that is a fifth of the history old. So once the gate has judged the challenger on the
holdout, the same kind of model (same fields, same hyper-parameters) is fitted again on
training and holdout leads together. A boosted model keeps the number of trees early stopping
chose, scaled by how many more leads it now learns from.

Calibration keeps the Platt slope measured on the validation leads (the refit model's margins
on leads it learnt from would overstate it). The intercept follows the newest leads only where
their win rate can be believed: on the holdout leads that are settled (old enough for nine in
ten outcomes to have arrived). The newest leads as a whole are closed only if they closed
fast; censoring weights correct that only as far as the delays of older leads describe the
newest, and the rolling origin of `make bench-quality` measured them failing on an export that
began with a backlog of slow deals. With too few settled newest leads the validation's
intercept is kept. The card's holdout metrics stay those of the model the gate judged: the
refit model has no leads left to be judged on, and `make bench-quality` measures what the
refit gains on later leads.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from models.calibration import PlattCalibration
from training.candidates import encode_split, fit_model
from training.dataset import LABEL, WEIGHT, settled
from training.pipeline import TrainedCandidate, TrainingConfig, with_grades

#: Bounds of the refit intercept search (log-odds): far beyond any real base rate.
_INTERCEPT_BOUND = 30.0
#: Fewest won, and fewest not won, settled newest leads an intercept is re-estimated on.
MIN_RECALIBRATION_OUTCOMES = 30


def refit_intercept(
    margin: np.ndarray, y: np.ndarray, w: np.ndarray, slope: float
) -> PlattCalibration:
    """The Platt intercept at which the weighted mean probability equals the weighted win rate
    (the maximum-likelihood intercept for a fixed slope)."""

    def excess(intercept: float) -> float:
        return float(np.sum(w * (expit(slope * margin + intercept) - y)))

    intercept = brentq(excess, -_INTERCEPT_BOUND, _INTERCEPT_BOUND)
    return PlattCalibration(slope=slope, intercept=float(intercept))


def settled_newest(rows: pd.DataFrame, n_newest: int) -> np.ndarray:
    """Which of the last `n_newest` of `rows` are settled, if enough of each outcome are; else
    none (the intercept then stays the validation's). Settled is judged on all `rows`: the
    time to close is measured on every closed lead."""
    chosen = settled(rows).to_numpy()[len(rows) - n_newest :]
    won = int(rows[LABEL].to_numpy()[len(rows) - n_newest :][chosen].sum())
    if min(won, int(chosen.sum()) - won) < MIN_RECALIBRATION_OUTCOMES:
        return np.zeros(n_newest, dtype=bool)
    return chosen


def refit_chosen(candidate: TrainedCandidate, config: TrainingConfig) -> TrainedCandidate:
    """The candidate with `served` set: its chosen model refit on all its closed leads."""
    chosen = candidate.fitted[candidate.chosen]
    schema = chosen.scorer.schema
    rows = pd.concat([candidate.train, candidate.holdout], ignore_index=True)
    newest = candidate.holdout
    read = set(chosen.scorer.feature_fields)
    excluded = frozenset(f.name for f in schema.model_fields_in_order if f.name not in read)
    data = encode_split(schema, rows, newest, excluded)
    early_stopped = chosen.info.best_iteration
    rounds = None
    if early_stopped is not None:
        rounds = max(1, math.ceil(early_stopped * len(rows) / candidate.facts.n_fit))
    refit = fit_model(candidate.chosen, schema, data, config.models, rounds)
    calibration = chosen.scorer.calibration
    recalibration = settled_newest(rows, len(newest))
    if recalibration.any():
        margin = refit.scorer.model.margin(data.valid.x[recalibration])
        y, w = newest[LABEL].to_numpy(), newest[WEIGHT].to_numpy()
        calibration = refit_intercept(margin, y[recalibration], w[recalibration], calibration.slope)
    info = refit.info.model_copy(
        update={
            "refit_leads": len(rows),
            "early_stopped_iteration": early_stopped,
            "recalibration_leads": int(recalibration.sum()),
        }
    )
    served = dataclasses.replace(
        refit,
        scorer=dataclasses.replace(refit.scorer, calibration=calibration),
        validation_auc=chosen.validation_auc,
        info=info,
    )
    base_rate = float(np.average(newest[LABEL], weights=newest[WEIGHT]))
    volume = candidate.facts.leads_per_month or 0.0
    graded = with_grades(
        {candidate.chosen: served}, newest, base_rate, volume, config.sales_capacity
    )
    return dataclasses.replace(candidate, served=graded[candidate.chosen])
