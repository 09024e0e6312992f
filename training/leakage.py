"""The leakage guard: find fields that know the outcome, or the date, better than they should.

Fields filled in after the outcome (sales notes, lead quality set after the call) make a model
look brilliant offline and fail in production. Fields that mostly tell old leads from new ones
(time proxies) fail the same way for boosted trees, which cannot extrapolate them. Every check
looks at one field alone, through the same lens: the field's values are grouped into levels
(categories, or quantile bins of a number, with "missing" as a level of its own), each level is
replaced by the smoothed rate of the target in the other folds, and the result is ranked
against the target (out-of-fold AUC). The checks, with their thresholds:

- `dominant`: the field alone separates won from lost with AUC >= 0.85 (training leads only).
- `decisive values`: some levels are almost always won (>= 90%) and others almost never
  (<= 5%), each side holding at least 1% of leads and together at least 10%: the shape of a
  decision recorded in a field, not of a signal.
- `open vs closed`: the field's missingness differs by >= 30 points between open and closed
  leads, or (except for the source field) its values tell open from closed leads with
  AUC >= 0.75: it gets filled in as the lead is worked.
- `time proxy`: the field alone tells the training window from the holdout window with
  AUC >= 0.60 (adversarial validation). The lead-source field is exempt: a moving source mix is
  what marketers steer and the reports track, and the model must score by source.

A flagged field is excluded from the model unless the schema accepts it with a written
justification (`accept_leak:` on the field).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from features.schema import FieldRole, FieldType, LeadField, LeadSchema
from models.card import Leak
from training.dataset import LABEL

MISSING_LEVEL = "<missing>"
DOMINANT_AUC = 0.85
DECISIVE_WON = 0.90
DECISIVE_LOST = 0.05
DECISIVE_SIDE_SHARE = 0.01
DECISIVE_SHARE = 0.10
OPEN_MISSING_GAP = 0.30
OPEN_AUC = 0.75
TIME_PROXY_AUC = 0.60
_BINS = 20
_SMOOTHING = 10.0
_FOLDS = 5
_MIN_ROWS = 50


def levels(values: pd.Series, field_type: FieldType) -> pd.Series:
    """A field's values as discrete levels: categories, or quantile bins of a number."""
    if field_type is FieldType.NUMERIC:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.nunique() > _BINS:
            binned = pd.qcut(numbers, _BINS, duplicates="drop").astype(str)
            return binned.where(numbers.notna(), MISSING_LEVEL)
        return numbers.astype(str).where(numbers.notna(), MISSING_LEVEL)
    text = values.astype(object).where(values.notna(), None)
    return text.map(lambda v: MISSING_LEVEL if v is None or str(v).strip() == "" else str(v))


def level_rates(level: pd.Series, target: np.ndarray) -> pd.DataFrame:
    """Per level: share of rows and the target rate smoothed towards the overall rate."""
    prior = float(np.mean(target))
    grouped = pd.DataFrame({"level": level.to_numpy(), "y": target}).groupby("level")["y"]
    stats = grouped.agg(["sum", "count"])
    stats["rate"] = (stats["sum"] + _SMOOTHING * prior) / (stats["count"] + _SMOOTHING)
    stats["share"] = stats["count"] / len(target)
    return stats


def out_of_fold_auc(level: pd.Series, target: np.ndarray, seed: int = 0) -> float:
    """How well the level alone ranks the target, each fold encoded by the other folds."""
    target = np.asarray(target, dtype=int)
    if len(target) < _MIN_ROWS or target.min() == target.max():
        return 0.5
    folds = min(_FOLDS, int(np.bincount(target).min()))
    if folds < 2:
        return 0.5
    encoded = np.empty(len(target))
    values = level.to_numpy()
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit, score in splitter.split(values, target):
        rates = level_rates(level.iloc[fit], target[fit])["rate"]
        prior = float(np.mean(target[fit]))
        encoded[score] = pd.Series(values[score]).map(rates).fillna(prior).to_numpy()
    return float(roc_auc_score(target, encoded))


def _decisive(level: pd.Series, label: np.ndarray) -> str | None:
    stats = level_rates(level, label)
    won_side = stats.loc[stats["rate"] >= DECISIVE_WON, "share"].sum()
    lost_side = stats.loc[stats["rate"] <= DECISIVE_LOST, "share"].sum()
    if min(won_side, lost_side) >= DECISIVE_SIDE_SHARE and won_side + lost_side >= DECISIVE_SHARE:
        return (
            f"decisive values: {won_side:.0%} of leads have values that are almost always won "
            f"and {lost_side:.0%} values that are almost never won"
        )
    return None


def _open_vs_closed(lead_field: LeadField, closed: pd.Series, open_: pd.Series) -> str | None:
    if len(open_) < _MIN_ROWS:
        return None
    both = pd.concat([closed, open_], ignore_index=True)
    level = levels(both, lead_field.type)
    is_open = np.r_[np.zeros(len(closed), int), np.ones(len(open_), int)]
    missing_closed = float((level[: len(closed)] == MISSING_LEVEL).mean())
    missing_open = float((level[len(closed) :] == MISSING_LEVEL).mean())
    if abs(missing_open - missing_closed) >= OPEN_MISSING_GAP:
        return (
            f"open vs closed: missing for {missing_open:.0%} of open leads but "
            f"{missing_closed:.0%} of closed ones (filled in as the lead is worked)"
        )
    if lead_field.role is FieldRole.SOURCE:
        return None  # a moving source mix is not a leak (see the time-proxy exemption)
    auc = out_of_fold_auc(level, is_open)
    if auc >= OPEN_AUC:
        return f"open vs closed: its values tell open from closed leads (AUC {auc:.2f})"
    return None


def find_leaks(
    schema: LeadSchema,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    open_leads: pd.DataFrame,
) -> list[Leak]:
    """Check every model field; `train` has labels, `holdout` and `open_leads` only features."""
    label = train[LABEL].to_numpy()
    in_holdout = np.r_[np.zeros(len(train), int), np.ones(len(holdout), int)]
    found = []
    for lead_field in schema.model_fields_in_order:
        name = lead_field.name
        level = levels(train[name], lead_field.type)
        reasons = []
        auc = out_of_fold_auc(level, label)
        if auc >= DOMINANT_AUC:
            reasons.append(
                ("dominant", f"dominant: alone it separates won from lost (AUC {auc:.2f})")
            )
        decisive = _decisive(level, label)
        if decisive:
            reasons.append(("decisive_values", decisive))
        opened = _open_vs_closed(lead_field, train[name], open_leads.get(name, pd.Series()))
        if opened:
            reasons.append(("open_vs_closed", opened))
        if lead_field.role is not FieldRole.SOURCE:
            both = pd.concat([train[name], holdout[name]], ignore_index=True)
            time_auc = out_of_fold_auc(levels(both, lead_field.type), in_holdout)
            if time_auc >= TIME_PROXY_AUC:
                why = (
                    f"time proxy: alone it tells training leads from the newest ones "
                    f"(AUC {time_auc:.2f}); trees cannot extrapolate it"
                )
                reasons.append(("time_proxy", why))
        if reasons:
            checks = ", ".join(check for check, _ in reasons)
            why = "; ".join(text for _, text in reasons)
            found.append(
                Leak(field=name, check=checks, why=why, accepted_because=lead_field.accept_leak)
            )
    return found
