"""Time proxies: fields whose values moved with time, kept or excluded per candidate by their
measured effect on the newest validation leads.

A field that mostly tells old leads from new ones can break a model: a tree cannot
extrapolate a calendar-like value past the training window. But a shift in who the leads are
(their age, job or company mix) is what a lead-scoring model must live with, and a calendar
proxy that breaks a tree can help a linear model follow the regime. So a shift alone decides
nothing. The adversarial check only nominates: a field whose values alone tell the training
window from the holdout window with AUC >= 0.60 (the source field is exempt: a moving source
mix is what marketers steer, and the model must score by source). Each servable candidate is
then fitted with and without each nominated field (drop-column comparison), and the field is
excluded from that candidate only when the candidate does clearly better without it on the
validation leads, the newest leads the run may learn from: the paired bootstrap 95% interval of
the AUC difference (the gate's own test) lies above zero. A difference within the noise of a
few thousand leads keeps the field: dropping signal on a coin flip is the costlier mistake.
The rules baseline, the points a person would write, never reads a nominated field.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.schema import FieldRole, LeadSchema
from models.card import TimeProxyDecision
from training.candidates import CandidateConfig, EncodedSplit, Fitted, fit_model
from training.leakage import levels, out_of_fold_auc
from training.metrics import compare_auc

TIME_PROXY_AUC = 0.60


@dataclass(frozen=True)
class TimeShift:
    """A field whose values alone tell the training window from the newest leads."""

    field: str
    auc: float


def time_shifts(
    schema: LeadSchema, older: pd.DataFrame, newer: pd.DataFrame, fields: frozenset[str]
) -> tuple[TimeShift, ...]:
    """Nominate the `fields` that moved with time (adversarial validation, one field alone).

    Only features are read from `newer`, never its outcomes. Fields the schema accepts with a
    written reason (`accept_leak`) are kept as they are, without a comparison.
    """
    in_newer = np.r_[np.zeros(len(older), int), np.ones(len(newer), int)]
    shifts = []
    for lead_field in schema.model_fields_in_order:
        if (
            lead_field.name not in fields
            or lead_field.role is FieldRole.SOURCE
            or lead_field.accept_leak
        ):
            continue
        both = pd.concat([older[lead_field.name], newer[lead_field.name]], ignore_index=True)
        auc = out_of_fold_auc(levels(both, lead_field.type), in_newer)
        if auc >= TIME_PROXY_AUC:
            shifts.append(TimeShift(lead_field.name, auc))
    return tuple(shifts)


def fit_judged(
    name: str,
    schema: LeadSchema,
    data: EncodedSplit,
    config: CandidateConfig,
    shifts: tuple[TimeShift, ...],
) -> tuple[Fitted, tuple[TimeProxyDecision, ...]]:
    """Fit candidate `name` without the shifted fields it does clearly worse with, and say why.

    When every field the candidate could read is shifted, there is nothing to compare a
    field's absence against, and all are kept.
    """
    full = fit_model(name, schema, data, config)
    if len(data.encoder.columns) <= len(shifts):
        return full, ()
    decisions = tuple(
        _decision(
            name, shift, full, fit_model(name, schema, data.without({shift.field}), config), data
        )
        for shift in shifts
    )
    dropped = {d.field for d in decisions if d.excluded}
    if not dropped:
        return full, decisions
    return fit_model(name, schema, data.without(dropped), config), decisions


def _decision(
    name: str, shift: TimeShift, full: Fitted, without: Fitted, data: EncodedSplit
) -> TimeProxyDecision:
    difference = compare_auc(
        data.valid.y,
        validation_margin(without, data),
        validation_margin(full, data),
        shift.field,
        data.valid.w,
    )
    return TimeProxyDecision(
        field=shift.field,
        model_kind=name,
        shift_auc=shift.auc,
        auc_with=full.validation_auc,
        auc_without=without.validation_auc,
        interval_low=difference.low,
        interval_high=difference.high,
    )


def validation_margin(model: Fitted, data: EncodedSplit) -> np.ndarray:
    """A model's margins on the validation leads of `data`, read through its own columns."""
    unread = set(data.encoder.fields) - set(model.scorer.feature_fields)
    return model.scorer.model.margin(data.without(unread).valid.x)
