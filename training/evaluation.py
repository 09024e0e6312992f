"""The numbers of a run's model-quality report (pure: a trained candidate in, a dict out).

Everything is measured on the holdout, with the leads' censoring weights, so the report and
the promotion gate agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.schema import FieldRole
from training.candidates import BASELINES, SERVABLE, records
from training.dataset import LABEL, WEIGHT
from training.metrics import holdout_metrics, ranked_slices, reliability
from training.pipeline import TrainedCandidate
from training.promotion import PromotionDecision

#: Segments smaller than this get counts but no AUC (too noisy to read).
MIN_SEGMENT_LEADS = 30


def lift_by_decile(y: np.ndarray, probability: np.ndarray, w: np.ndarray) -> list[dict]:
    """Deciles of lead weight from the highest scores down: win rate and lift over average
    (the first decile's lift is `lift_at_10`)."""
    rates, lowest = ranked_slices(y, probability, np.linspace(0.0, 1.0, 11), w)
    overall = np.average(y, weights=w)
    return [
        {
            "decile": decile,
            "min_probability": float(low),
            "win_rate": float(rate),
            "lift": float(rate / overall),
        }
        for decile, (rate, low) in enumerate(zip(rates, lowest, strict=True), start=1)
    ]


def by_grade(y: np.ndarray, probability: np.ndarray, w: np.ndarray, grades: Any) -> list[dict]:
    labels = np.array([grades.grade(float(p)) for p in probability])
    return [
        {
            "grade": grade,
            "leads": int(mask.sum()),
            "share": float(w[mask].sum() / w.sum()),
            "predicted": float(np.average(probability[mask], weights=w[mask])),
            "win_rate": float(np.average(y[mask], weights=w[mask])),
        }
        for grade in "ABCD"
        if (mask := labels == grade).any()
    ]


def by_segment(
    values: pd.Series, y: np.ndarray, probability: np.ndarray, w: np.ndarray
) -> list[dict]:
    """Per value of one field: leads, actual and predicted win rate, and the holdout metrics
    within it (when it has both won and lost leads and enough of them)."""
    rows = []
    keys = values.astype(object).where(values.notna(), "(missing)").astype(str).to_numpy()
    for key in pd.unique(keys):
        mask = keys == key
        both = 0 < y[mask].sum() < mask.sum()
        measurable = both and mask.sum() >= MIN_SEGMENT_LEADS
        rows.append(
            {
                "value": key,
                "leads": int(mask.sum()),
                "win_rate": float(np.average(y[mask], weights=w[mask])),
                "predicted": float(np.average(probability[mask], weights=w[mask])),
                "metrics": holdout_metrics(y[mask], probability[mask], w[mask])
                if measurable
                else None,
            }
        )
    return sorted(rows, key=lambda r: -r["leads"])


def field_importance(candidate: TrainedCandidate) -> list[dict]:
    """Mean absolute contribution of each field to the margin (log-odds) over the holdout."""
    scorer = candidate.scorer
    rows = scorer.encoder.encode(records(candidate.holdout, scorer.feature_fields))
    contributions = np.abs(scorer.contributions(rows)[:, :-1]).mean(axis=0)
    ranked = sorted(zip(scorer.feature_fields, contributions, strict=True), key=lambda t: -t[1])
    return [{"field": name, "mean_abs_log_odds": float(value)} for name, value in ranked]


def quality_report(
    candidate: TrainedCandidate,
    decision: PromotionDecision,
    champion: dict[str, Any] | None,
    model_version: str,
) -> dict[str, Any]:
    """Everything the model-quality report shows, as JSON-ready data."""
    holdout = candidate.holdout
    y, w = holdout[LABEL].to_numpy(), holdout[WEIGHT].to_numpy()
    p = candidate.holdout_probability
    schema = candidate.scorer.schema
    segments = {}
    for role in (FieldRole.SOURCE, FieldRole.LEAD_TYPE):
        field = schema.field_with_role(role)
        if field is not None and field.name in holdout.columns:
            segments[field.name] = by_segment(holdout[field.name], y, p, w)
    card = candidate.card.model_dump(mode="json", exclude={"candidates", "baselines"})
    return {
        "model_version": model_version,
        "model_kind": candidate.chosen,
        "card": card,
        "decision": {
            "promoted": decision.promote,
            "reason": decision.reason,
            "comparisons": [c.to_dict() for c in decision.comparisons],
        },
        "metrics": {
            "model": candidate.metrics,
            **{name: candidate.evaluations[name].metrics for name in BASELINES},
            **({"champion": champion["metrics"]} if champion else {}),
        },
        "champion_version": champion["version"] if champion else None,
        "candidates": {
            name: candidate.evaluations[name].result().model_dump()
            for name in SERVABLE
            if name in candidate.evaluations
        },
        "lift_by_decile": lift_by_decile(y, p, w),
        "grades": {
            "cutoffs": candidate.scorer.grades.to_dict(),
            "holdout": by_grade(y, p, w, candidate.scorer.grades),
        },
        "calibration": {
            name: reliability(y, candidate.evaluations[name].probability, w)
            for name in (candidate.chosen, "logistic_regression", "rules")
        },
        "segments": segments,
        "importance": field_importance(candidate),
        "leaks": card["leaks"],
        "time_proxies": card["time_proxies"],
        "refit_leads": card["model_info"]["refit_leads"],
        "recalibration_leads": card["model_info"]["recalibration_leads"],
    }
