"""The leakage guard: find fields that know the outcome better than they should.

Fields filled in after the outcome (sales notes, lead quality set after the call, days spent in
a pipeline stage) make a model look brilliant offline and fail in production. Most checks look
at one field alone, through the same lens: the field's values are grouped into levels
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
- `sales process`: a number that grows (or shrinks) with the lead's time to close: absolute
  Spearman correlation >= 0.30 with closed-minus-created days, measured within each outcome
  (so a field that predicts fast disqualifications is not mistaken for one) on leads old
  enough for nine in ten outcomes to have arrived. Only when the leads have real closing
  dates. Days per stage, stage changes and total cycle time look like this; none of them is
  dominant alone, so the single-field AUC checks miss them.
- `suspect name`: the field's name holds a word of the sales process (`SALES_PROCESS_WORDS`:
  stage, status, outcome, reason, won, lost, closing, duration...). Such a field describes what
  happened after the lead was created more often than not; it is excluded for review. Fields
  the user named as source or lead type are exempt.

A flagged field is excluded from the model unless the schema accepts it with a written
justification (`accept_leak:` on the field). Fields that moved with time are not leaks: the
time-proxy check (`training.time_proxies`) judges them by their effect, per candidate.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from features.encoding import FALSE_TOKENS, TRUE_TOKENS, is_missing
from features.schema import FieldRole, FieldType, LeadField, LeadSchema
from models.card import Leak
from training.dataset import CREATED_AT, LABEL, OCCURRED_AT, OUTCOME, days_to_close, settled

MISSING_LEVEL = "<missing>"
DOMINANT_AUC = 0.85
DECISIVE_WON = 0.90
DECISIVE_LOST = 0.05
DECISIVE_SIDE_SHARE = 0.01
DECISIVE_SHARE = 0.10
OPEN_MISSING_GAP = 0.30
OPEN_AUC = 0.75
SALES_PROCESS_RHO = 0.30
#: Words of a field name that mark it as describing the sales process (matched whole, any
#: case; camelCase and snake_case names are split into words).
SALES_PROCESS_WORDS = frozenset(
    {
        "stage", "stages", "status", "pipeline", "elapsed", "duration", "outcome", "outcomes",
        "result", "results", "reason", "reasons", "won", "lost", "win", "loss", "close",
        "closed", "closing", "churn", "churned", "disqualified", "disqualification",
        "negotiation", "proposal", "prospecting", "qualification",
    }
)  # fmt: skip
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


def _open_vs_closed(
    lead_field: LeadField, closed: pd.Series, open_: pd.Series | None
) -> str | None:
    if open_ is None or len(open_) < _MIN_ROWS:
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


def words(name: str) -> set[str]:
    """A field name's words, lower case: "daysInStage" and "days_in_stage" alike."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w}


def _suspect_name(lead_field: LeadField) -> str | None:
    if lead_field.role in (FieldRole.SOURCE, FieldRole.LEAD_TYPE):
        return None
    hits = sorted(words(lead_field.name) & SALES_PROCESS_WORDS)
    if not hits:
        return None
    return (
        f"suspect name: {', '.join(repr(h) for h in hits)} is a word of the sales process, so "
        "the field probably describes what happened after the lead was created"
    )


def settled_closed_leads(rows: pd.DataFrame) -> pd.DataFrame:
    """Closed leads old enough for nine in ten outcomes to have arrived, with their days to
    close (`_days`); empty when the leads have no real closing dates."""
    if CREATED_AT not in rows or OCCURRED_AT not in rows or rows.empty:
        return rows.iloc[:0]
    days = days_to_close(rows)
    if days.nunique() < _BINS:  # closing dates made up from creation dates
        return rows.iloc[:0]
    return rows.assign(_days=days)[settled(rows)]


def _grows_with_time_to_close(lead_field: LeadField, settled: pd.DataFrame) -> str | None:
    if lead_field.type is FieldType.CATEGORICAL or settled.empty:
        return None
    correlations, sizes = [], []
    for _, group in settled.groupby(OUTCOME):
        values = as_numbers(group[lead_field.name], lead_field.type)
        present = values.notna().to_numpy()
        if present.sum() < _MIN_ROWS or values[present].nunique() < 2:
            continue
        rho = spearmanr(values[present], group["_days"].to_numpy()[present]).statistic
        if np.isfinite(rho):
            correlations.append(float(rho))
            sizes.append(int(present.sum()))
    if not correlations:
        return None
    rho = float(np.average(correlations, weights=sizes))
    if abs(rho) < SALES_PROCESS_RHO:
        return None
    direction = "grows" if rho > 0 else "shrinks"
    return (
        f"sales process: it {direction} with the lead's time to close (Spearman {rho:+.2f} "
        "within each outcome), so it is probably measured as the deal moves"
    )


def as_numbers(values: pd.Series, field_type: FieldType) -> pd.Series:
    """A numeric or boolean field's values as floats (NaN where missing or unreadable)."""
    if field_type is FieldType.BOOLEAN:
        flags = dict.fromkeys(TRUE_TOKENS, 1.0) | dict.fromkeys(FALSE_TOKENS, 0.0)
        return values.map(
            lambda v: np.nan if is_missing(v) else flags.get(str(v).strip().lower(), np.nan)
        ).astype(float)
    return pd.to_numeric(values, errors="coerce")


def find_leaks(schema: LeadSchema, train: pd.DataFrame, open_leads: pd.DataFrame) -> list[Leak]:
    """Check every model field; `train` has labels and dates, `open_leads` only features."""
    label = train[LABEL].to_numpy()
    settled = settled_closed_leads(train)
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
        checks = (
            ("decisive_values", _decisive(level, label)),
            ("open_vs_closed", _open_vs_closed(lead_field, train[name], open_leads.get(name))),
            ("sales_process", _grows_with_time_to_close(lead_field, settled)),
            ("suspect_name", _suspect_name(lead_field)),
        )
        reasons += [(check, why) for check, why in checks if why]
        if reasons:
            found.append(
                Leak(
                    field=name,
                    check=", ".join(check for check, _ in reasons),
                    why="; ".join(text for _, text in reasons),
                    accepted_because=lead_field.accept_leak,
                )
            )
    return found
