"""Fit every model a run considers, on the same split, through the same encoder.

Candidates that may be served: LightGBM, LightGBM with recency weighting (recent leads count
more, for funnels that drift), and a logistic regression. Baselines they must beat: the base
rate, a points score of the kind marketing teams write by hand, and the same logistic
regression. LightGBM's linear trees are not considered: LightGBM cannot compute exact SHAP
contributions for them, and every served score must explain itself exactly.

Each model is fitted on the older leads and calibrated (Platt) on the validation leads.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from features.encoding import MIN_CATEGORY_COUNT, FeatureEncoder, fit_encoder
from features.schema import FieldRole, FieldType, LeadSchema
from models.boosted import BoostedTrees
from models.calibration import fit_platt
from models.card import ModelInfo
from models.grades import GradeCutoffs
from models.linear import LinearModel, Term, signed_log1p
from models.rules import POINT, PointsRules, PointsTable
from models.scorer import MarginModel, Scorer
from training.dataset import AS_OF, LABEL, WEIGHT

_MONOTONE = {"increasing": 1, "decreasing": -1, None: 0}
#: Pseudo-counts pulling a rules level's win rate towards the overall rate.
_RULES_SHRINKAGE = 50.0
_RULES_BUCKETS = 4
_RULES_MAX_ENGAGEMENT = 3

SERVABLE = ("lightgbm", "lightgbm_recency", "logistic_regression")
BASELINES = ("base_rate", "rules", "logistic_regression")


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
    #: Also the fewest leads a category needs to be split on: as few as the encoder keeps.
    cat_smooth: float = float(MIN_CATEGORY_COUNT)
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
class CandidateConfig:
    booster: BoosterConfig = field(default_factory=BoosterConfig)
    #: Recency weighting halves a lead's weight every this share of the training window.
    recency_half_life: float = 0.33
    #: Inverse regularisation strength of the logistic regression.
    regularisation_c: float = 1.0
    candidates: tuple[str, ...] = SERVABLE


@dataclass(frozen=True)
class Fitted:
    """One calibrated model, with what the run reports about it."""

    name: str
    scorer: Scorer
    validation_auc: float
    info: ModelInfo


@dataclass(frozen=True)
class Encoded:
    """A slice of the training set, encoded once for every model, with its lead weights."""

    x: np.ndarray
    y: np.ndarray
    w: np.ndarray


def records(rows: pd.DataFrame, fields: list[str]) -> list[dict[str, Any]]:
    """Rows of a training frame as the lead mappings the encoder takes."""
    return rows[fields].to_dict(orient="records")


def encode(encoder: FeatureEncoder, rows: pd.DataFrame) -> Encoded:
    x = encoder.encode(records(rows, encoder.fields))
    return Encoded(x, rows[LABEL].to_numpy(), rows[WEIGHT].to_numpy())


def fit_boosted(
    schema: LeadSchema,
    encoder: FeatureEncoder,
    fit: Encoded,
    valid: Encoded,
    config: BoosterConfig,
    weights: np.ndarray | None = None,
    rounds: int | None = None,
) -> tuple[BoostedTrees, ModelInfo]:
    """LightGBM with early stopping on the validation leads, or exactly `rounds` trees."""
    monotone = [_MONOTONE[schema.by_name[name].monotone] for name in encoder.feature_names]
    params = config.lightgbm_params(monotone)
    dataset_params = {"feature_pre_filter": False}
    train = lgb.Dataset(
        fit.x,
        label=fit.y,
        weight=fit.w if weights is None else fit.w * weights,
        # LightGBM refuses some characters in names; the encoder keeps the real ones.
        feature_name=[f"column_{i}" for i in range(len(encoder.columns))],
        categorical_feature=encoder.categorical_indices,
        params=dataset_params,
        free_raw_data=False,
    )
    if rounds is not None:
        booster = lgb.train(params, train, num_boost_round=rounds)
    else:
        valid_set = lgb.Dataset(
            valid.x, label=valid.y, weight=valid.w, reference=train, params=dataset_params
        )
        booster = lgb.train(
            params,
            train,
            num_boost_round=config.max_rounds,
            valid_sets=[valid_set],
            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
        )
    booster.free_dataset()
    # Keep only the trees up to the best iteration, so every later predict uses exactly them.
    best = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return BoostedTrees(encoder, best), ModelInfo(best_iteration=best.num_trees(), params=params)


def recency_weights(as_of: pd.Series, half_life_share: float) -> np.ndarray:
    """Weight halving every `half_life_share` of the window, going back from its newest lead."""
    times = pd.to_datetime(as_of, utc=True)
    span = (times.max() - times.min()).total_seconds() or 1.0
    age = (times.max() - times).dt.total_seconds().to_numpy() / span
    return 0.5 ** (age / half_life_share)


def fit_linear(encoder: FeatureEncoder, fit: Encoded, c: float) -> LinearModel:
    """L2-penalised logistic regression on standardised numbers and one-hot categories."""
    terms: list[Term] = []
    for j, column in enumerate(encoder.columns):
        values = fit.x[:, j]
        missing = np.isnan(values)
        if column.kind is FieldType.CATEGORICAL:
            codes, counts = np.unique(values[~missing], return_counts=True)
            terms += [
                Term(j, "category", code=float(code))
                for code, count in zip(codes, counts, strict=True)
                if count >= MIN_CATEGORY_COUNT
            ]
        else:
            log = column.kind is FieldType.NUMERIC
            present = signed_log1p(values[~missing]) if log else values[~missing]
            if present.size:
                shift, scale = float(present.mean()), float(present.std()) or 1.0
                terms.append(Term(j, "value", log=log, shift=shift, scale=scale))
        if missing.any() and not missing.all():
            terms.append(Term(j, "missing"))
    draft = LinearModel(encoder, tuple(terms), np.zeros(len(terms)), 0.0)
    design = draft.design(fit.x)
    means = design.mean(axis=0) if len(design) else np.zeros(len(terms))
    centred = tuple(
        Term(**(asdict(t) | {"mean": float(m)})) for t, m in zip(terms, means, strict=True)
    )
    regression = LogisticRegression(C=c, max_iter=2_000).fit(design, fit.y, sample_weight=fit.w)
    weights, intercept = regression.coef_[0].copy(), float(regression.intercept_[0])
    return LinearModel(encoder, centred, weights, intercept)


def rules_fields(schema: LeadSchema, encoder: FeatureEncoder, fit: Encoded) -> list[int]:
    """Source, lead type and engagement: monotone fields, else the likeliest numbers."""
    roles = {FieldRole.SOURCE, FieldRole.LEAD_TYPE}
    chosen = [j for j, c in enumerate(encoder.columns) if schema.by_name[c.name].role in roles]
    engagement = [
        j for j, c in enumerate(encoder.columns) if schema.by_name[c.name].monotone is not None
    ]
    if not engagement:
        numeric = [j for j, c in enumerate(encoder.columns) if c.kind is not FieldType.CATEGORICAL]
        strength = {j: abs(_auc(fit.y, np.nan_to_num(fit.x[:, j]), fit.w) - 0.5) for j in numeric}
        engagement = sorted(numeric, key=lambda j: -strength[j])[:_RULES_MAX_ENGAGEMENT]
    return chosen + [j for j in engagement if j not in chosen]


def fit_rules(schema: LeadSchema, encoder: FeatureEncoder, fit: Encoded) -> PointsRules:
    """Points per level, from each level's shrunken win rate: what a marketer would write."""
    base = float(np.average(fit.y, weights=fit.w))
    base_log_odds = np.log(base / (1 - base))
    tables = []
    for j in rules_fields(schema, encoder, fit):
        values = fit.x[:, j]
        present = values[~np.isnan(values)]
        edges: tuple[float, ...] = ()
        if encoder.columns[j].kind is FieldType.NUMERIC and present.size:
            quantiles = np.quantile(present, np.linspace(0, 1, _RULES_BUCKETS + 1)[1:-1])
            edges = tuple(float(q) for q in np.unique(quantiles))
        table = PointsTable(j, edges)
        levels = np.array(["missing" if np.isnan(v) else table.level(v) for v in values])
        points = {}
        for level in np.unique(levels):
            in_level = levels == level
            won, total = (fit.w * fit.y)[in_level].sum(), fit.w[in_level].sum()
            rate = (won + _RULES_SHRINKAGE * base) / (total + _RULES_SHRINKAGE)
            points[str(level)] = int(round((np.log(rate / (1 - rate)) - base_log_odds) / POINT))
        missing = points.pop("missing", 0)
        table = PointsTable(j, edges, points, missing)
        tables.append(PointsTable(j, edges, points, missing, float(table.read(fit.x).mean())))
    return PointsRules(encoder, tuple(tables), float(base_log_odds))


def _auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    return float(roc_auc_score(y, score, sample_weight=weights)) if 0 < y.sum() < len(y) else 0.5


def calibrated(
    name: str,
    schema: LeadSchema,
    model: MarginModel,
    valid: Encoded,
    info: ModelInfo | None = None,
) -> Fitted:
    """Platt-calibrate on the validation leads; grade cut-offs are set once a model is chosen."""
    margin = model.margin(valid.x)
    scorer = Scorer(schema, model, fit_platt(margin, valid.y, valid.w), GradeCutoffs())
    return Fitted(name, scorer, _auc(valid.y, margin, valid.w), info or ModelInfo())


@dataclass(frozen=True)
class EncodedSplit:
    """Fitting and validation leads, encoded once for every model of a run.

    Each field is one column, so a model without some fields reads a column subset: the
    drop-column comparisons of the time-proxy check cost no second encoding.
    """

    encoder: FeatureEncoder
    fit: Encoded
    valid: Encoded
    #: When each fitting lead's features were known (recency weighting reads it).
    fit_as_of: pd.Series

    def without(self, fields: Collection[str]) -> EncodedSplit:
        """The same leads without the columns of `fields`."""
        keep = [j for j, c in enumerate(self.encoder.columns) if c.name not in fields]
        if len(keep) == len(self.encoder.columns):
            return self
        encoder = FeatureEncoder(tuple(self.encoder.columns[j] for j in keep))

        def cut(part: Encoded) -> Encoded:
            return Encoded(part.x[:, keep], part.y, part.w)

        return EncodedSplit(encoder, cut(self.fit), cut(self.valid), self.fit_as_of)


def encode_split(
    schema: LeadSchema,
    fit_rows: pd.DataFrame,
    valid_rows: pd.DataFrame,
    exclude: frozenset[str] = frozenset(),
) -> EncodedSplit:
    """Fit the encoder on the fitting leads (without `exclude`) and encode both parts."""
    fields = [f.name for f in schema.model_fields_in_order if f.name not in exclude]
    encoder = fit_encoder(schema, records(fit_rows, fields), exclude=exclude)
    return EncodedSplit(
        encoder, encode(encoder, fit_rows), encode(encoder, valid_rows), fit_rows[AS_OF]
    )


def fit_model(
    name: str,
    schema: LeadSchema,
    data: EncodedSplit,
    config: CandidateConfig,
    rounds: int | None = None,
) -> Fitted:
    """One candidate or baseline model, fitted and calibrated on `data` (boosted models with
    exactly `rounds` trees when given, else early-stopped on the validation part)."""
    if name == "rules":
        return calibrated(name, schema, fit_rules(schema, data.encoder, data.fit), data.valid)
    if name == "logistic_regression":
        linear = fit_linear(data.encoder, data.fit, config.regularisation_c)
        return calibrated(name, schema, linear, data.valid)
    weights = None
    if name == "lightgbm_recency":
        weights = recency_weights(data.fit_as_of, config.recency_half_life)
    model, info = fit_boosted(
        schema, data.encoder, data.fit, data.valid, config.booster, weights, rounds
    )
    return calibrated(name, schema, model, data.valid, info)
