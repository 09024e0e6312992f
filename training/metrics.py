"""Holdout metrics of conversion probabilities (pure functions).

Every metric takes optional lead weights (the censoring weights of `training.dataset`), so
recent leads count as much as the outcomes they stand for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

METRIC_NAMES = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_at_10", "ece")
#: Equal-mass bins: with a low win rate, equal-width bins would leave the top ones nearly empty.
CALIBRATION_BINS = 10


def _weights(y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)


def ranked_slices(
    y: np.ndarray, probability: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Win rate and lowest probability of each slice of leads ranked best first.

    Slices run between consecutive `edges` (shares of the total lead weight, 0 to 1). Leads with
    the same probability cannot be told apart, so a tie group that straddles an edge counts in
    each slice pro rata: the result never depends on the order of tied rows.
    """
    w = _weights(y, weights)
    order = np.argsort(-probability, kind="stable")
    ranked = probability[order]
    starts = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1]
    group_weight = np.add.reduceat(w[order], starts)
    group_won = np.add.reduceat((w * y)[order], starts)
    total = group_weight.sum()
    upper = np.cumsum(group_weight) / total
    lower = upper - group_weight / total
    rates, lowest = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        inside = np.clip(np.minimum(upper, b) - np.maximum(lower, a), 0.0, None) * total
        rates.append(float((inside / group_weight * group_won).sum() / inside.sum()))
        lowest.append(float(ranked[starts][inside > 0].min()))
    return np.array(rates), np.array(lowest)


def lift_at(
    y: np.ndarray, probability: np.ndarray, fraction: float, weights: np.ndarray | None = None
) -> float:
    """Win rate among the top `fraction` of leads by probability, over the overall win rate."""
    rates, _ = ranked_slices(y, probability, np.array([0.0, fraction]), weights)
    return float(rates[0] / np.average(y, weights=_weights(y, weights)))


def reliability(
    y: np.ndarray,
    probability: np.ndarray,
    weights: np.ndarray | None = None,
    bins: int = CALIBRATION_BINS,
) -> list[dict[str, float]]:
    """Mean predicted probability against the actual win rate, per equal-mass bin."""
    w = _weights(y, weights)
    order = np.argsort(probability, kind="stable")
    mass = np.cumsum(w[order]) / w.sum()
    bin_of = np.minimum((mass * bins - 1e-9).astype(int), bins - 1)
    curve = []
    for b in range(bins):
        part = order[bin_of == b]
        if len(part):
            curve.append(
                {
                    "predicted": float(np.average(probability[part], weights=w[part])),
                    "actual": float(np.average(y[part], weights=w[part])),
                    "weight": float(w[part].sum()),
                    "count": int(len(part)),
                }
            )
    return curve


def expected_calibration_error(
    y: np.ndarray, probability: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Mass-weighted mean gap between predicted and actual rates over equal-mass bins."""
    curve = reliability(y, probability, weights)
    total = sum(b["weight"] for b in curve)
    return float(sum(b["weight"] * abs(b["predicted"] - b["actual"]) for b in curve) / total)


def holdout_metrics(
    y: np.ndarray, probability: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float]:
    y = np.asarray(y)
    probability = np.asarray(probability, dtype=float)
    w = _weights(y, weights)
    return {
        "roc_auc": float(roc_auc_score(y, probability, sample_weight=w)),
        "pr_auc": float(average_precision_score(y, probability, sample_weight=w)),
        "log_loss": float(log_loss(y, probability, sample_weight=w, labels=[0, 1])),
        "brier": float(brier_score_loss(y, probability, sample_weight=w)),
        "lift_at_10": lift_at(y, probability, 0.10, w),
        "ece": expected_calibration_error(y, probability, w),
    }


def bootstrap_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) resampling counts, shared by both models of a paired comparison."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)


def weighted_aucs(y: np.ndarray, probability: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC under each row of weights, ties counted half (one sort for all rows)."""
    order = np.argsort(probability, kind="stable")
    ranked, won = probability[order], np.asarray(y)[order].astype(float)
    w = weights[:, order]
    starts = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1]
    pos = np.add.reduceat(w * won, starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - won), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


BOOTSTRAP_SAMPLES = 1_000
_CHUNK = 100


@dataclass(frozen=True)
class Comparison:
    """Challenger AUC minus another model's, on the same holdout leads."""

    against: str
    difference: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | str]:
        return {"against": self.against, "auc_difference": self.difference} | {
            "interval_low": self.low,
            "interval_high": self.high,
        }


def compare_auc(
    y: np.ndarray,
    challenger: np.ndarray,
    other: np.ndarray,
    against: str,
    lead_weights: np.ndarray | None = None,
    n_boot: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> Comparison:
    """Paired bootstrap 95% interval of AUC(challenger) - AUC(other), leads weighted."""
    rng = np.random.default_rng(seed)
    lead = np.ones(len(y)) if lead_weights is None else np.asarray(lead_weights, dtype=float)
    full = lead[None, :]
    difference = float(weighted_aucs(y, challenger, full)[0] - weighted_aucs(y, other, full)[0])
    spread = []
    for start in range(0, n_boot, _CHUNK):  # chunks bound the memory to _CHUNK x n weights
        weights = bootstrap_weights(len(y), min(_CHUNK, n_boot - start), rng) * lead
        spread.append(weighted_aucs(y, challenger, weights) - weighted_aucs(y, other, weights))
    low, high = np.quantile(np.concatenate(spread), [0.025, 0.975])
    return Comparison(against, difference, float(low), float(high))
