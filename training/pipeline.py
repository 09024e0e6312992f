"""From stored closed leads to an evaluated challenger (no I/O: the caller reads the store).

Leads are ordered by the time their features were known. The newest `holdout_fraction` is the
holdout, touched only to measure finished models. Within the older leads, the newest
`validation_fraction` stops the boosting, fits each model's calibration and chooses the
challenger among the servable candidates. The leakage guard looks at the older leads (and
only at the holdout's features) before anything is fitted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from features.schema import LeadSchema
from models.card import Leak, ModelCard, ModelResult, RunFacts, TimeProxyDecision, Window
from models.grades import derive_cutoffs
from models.scorer import Scorer
from store.repository import TrainingFrames
from training.candidates import (
    BASELINES,
    SERVABLE,
    CandidateConfig,
    EncodedSplit,
    Fitted,
    encode_split,
    fit_model,
    records,
)
from training.dataset import (
    AS_OF,
    LABEL,
    WEIGHT,
    build_training_set,
    censoring_weights,
    open_lead_rows,
)
from training.leakage import find_leaks
from training.metrics import holdout_metrics
from training.split import NotEnoughDataError, time_split
from training.time_proxies import TimeShift, fit_judged, time_shifts


@dataclass(frozen=True)
class TrainingConfig:
    holdout_fraction: float = 0.2
    validation_fraction: float = 0.15
    models: CandidateConfig = field(default_factory=CandidateConfig)
    #: Fewest won, and fewest lost or disqualified, outcomes worth a model.
    min_outcomes: int = 120
    #: Leads sales can work a month; grade A is the best that many.
    sales_capacity: int | None = None
    #: Refit the gate's choice on training and holdout leads before registering it.
    refit: bool = True


@dataclass(frozen=True)
class Evaluation:
    """One model's results: validation AUC (how it was chosen) and holdout metrics."""

    name: str
    validation_auc: float
    metrics: dict[str, float]
    probability: np.ndarray  # on the holdout leads, in holdout order

    def result(self) -> ModelResult:
        return ModelResult(validation_auc=self.validation_auc, holdout=self.metrics)


@dataclass(frozen=True)
class TrainedCandidate:
    """Everything one run fitted and measured; `chosen` names the challenger, and `served`,
    once set (`training.refit`), is that model refit on every closed lead."""

    chosen: str
    fitted: dict[str, Fitted]
    evaluations: dict[str, Evaluation]
    dataset: pd.DataFrame
    train: pd.DataFrame  # fitting plus validation leads
    holdout: pd.DataFrame
    leaks: list[Leak]
    facts: RunFacts  # the parts of the model card every model shares
    served: Fitted | None = None

    def switch(self, name: str) -> TrainedCandidate:
        """The same run with another of its models as the challenger."""
        return dataclasses.replace(self, chosen=name, served=None)

    @property
    def model(self) -> Fitted:
        """The model registered for serving: the refit one once there is one."""
        return self.served or self.fitted[self.chosen]

    @cached_property
    def card(self) -> ModelCard:
        return ModelCard(
            **dict(self.facts),
            model_kind=self.chosen,
            metrics=self.metrics,
            model_info=self.model.info,
        )

    @cached_property
    def scorer(self) -> Scorer:
        return dataclasses.replace(self.model.scorer, card=self.card)

    @property
    def metrics(self) -> dict[str, float]:
        return self.evaluations[self.chosen].metrics

    @property
    def holdout_probability(self) -> np.ndarray:
        return self.evaluations[self.chosen].probability

    @property
    def best_baseline(self) -> Evaluation:
        """The strongest baseline on the holdout, other than the challenger itself."""
        others = [self.evaluations[b] for b in BASELINES if b != self.chosen]
        return max(others, key=lambda e: e.metrics["roc_auc"])


def _window(rows: pd.DataFrame) -> Window:
    return Window(start=rows[AS_OF].min(), end=rows[AS_OF].max())


def holdout_leads(candidate: TrainedCandidate) -> list[dict[str, Any]]:
    """The holdout as lead mappings of every model field, for scoring it with the champion."""
    fields = [f.name for f in candidate.scorer.schema.model_fields_in_order]
    return records(candidate.holdout, fields)


def require_outcomes(rows: pd.DataFrame, minimum: int) -> None:
    """Refuse to train on fewer won, or lost and disqualified, outcomes than `minimum`."""
    won = int(rows[LABEL].sum())
    not_won = len(rows) - won
    if won >= minimum and not_won >= minimum:
        return
    raise NotEnoughDataError(
        f"too few outcomes to train: {won} won and {not_won} lost or disqualified; a model "
        f"needs at least {minimum} of each, so {max(0, minimum - won)} more won and "
        f"{max(0, minimum - not_won)} more lost or disqualified. Until then the service "
        "serves the rules score."
    )


def leads_per_month(frames: TrainingFrames, days: int = 90) -> float:
    """Leads created a month, over the last `days` of lead creation (open leads included)."""
    parts = [f["created_at"] for f in (frames.leads, frames.open_leads) if not f.empty]
    if not parts:
        return 0.0
    created = pd.to_datetime(pd.concat(parts), utc=True)
    recent = created[created > created.max() - pd.Timedelta(days=days)]
    return float(len(recent) * 30.0 / days)


def choose(fitted: dict[str, Fitted], allowed: tuple[str, ...]) -> str:
    """The servable candidate with the best validation AUC (ties go to the simpler model)."""
    simplest_first = [name for name in reversed(SERVABLE) if name in allowed and name in fitted]
    return max(simplest_first, key=lambda name: fitted[name].validation_auc)


def fit_models(
    schema: LeadSchema,
    data: EncodedSplit,
    config: CandidateConfig,
    shifts: tuple[TimeShift, ...],
) -> tuple[dict[str, Fitted], tuple[TimeProxyDecision, ...]]:
    """The rules baseline without any shifted field, and each servable candidate without the
    shifted fields it does worse with (the logistic regression is a baseline too)."""
    shifted = frozenset(s.field for s in shifts)
    fitted = {"rules": fit_model("rules", schema, data.without(shifted), config)}
    decisions: list[TimeProxyDecision] = []
    for name in SERVABLE:
        if name in config.candidates or name in BASELINES:
            fitted[name], judged = fit_judged(name, schema, data, config, shifts)
            decisions += judged
    return fitted, tuple(decisions)


def no_field_left(schema: LeadSchema, leaks: list[Leak]) -> NotEnoughDataError:
    """The error of a guard that excluded every model field, naming each one and why."""
    flagged = "\n".join(f"- {leak.field}: {leak.why}" for leak in leaks if leak.excluded)
    return NotEnoughDataError(
        "no model field is left after the leakage guard: it excluded every one "
        f"({len(schema.model_fields_in_order)}):\n{flagged}\n"
        "Keep a field the guard is wrong about with `accept_leak: <why>` on it in the schema, "
        "or add fields known when a lead is scored."
    )


def with_grades(
    fitted: dict[str, Fitted],
    recent: pd.DataFrame,
    base_rate: float,
    volume: float,
    capacity: int | None,
) -> dict[str, Fitted]:
    """Each model with grade cut-offs read off its probabilities of the `recent` leads."""
    graded = {}
    for name, model in fitted.items():
        probability = model.scorer.predict_proba(records(recent, model.scorer.feature_fields))
        cutoffs = derive_cutoffs(probability, base_rate, volume, capacity)
        scorer = dataclasses.replace(model.scorer, grades=cutoffs)
        graded[name] = dataclasses.replace(model, scorer=scorer)
    return graded


def evaluate(
    fitted: dict[str, Fitted], holdout: pd.DataFrame, base_rate: float
) -> dict[str, Evaluation]:
    """Every model, and the base rate as a constant, on the same holdout leads."""
    y, w = holdout[LABEL].to_numpy(), holdout[WEIGHT].to_numpy()
    evaluations = {}
    for name, model in fitted.items():
        probability = model.scorer.predict_proba(records(holdout, model.scorer.feature_fields))
        metrics = holdout_metrics(y, probability, w)
        evaluations[name] = Evaluation(name, model.validation_auc, metrics, probability)
    constant = np.full(len(holdout), base_rate)
    evaluations["base_rate"] = Evaluation(
        "base_rate", 0.5, holdout_metrics(y, constant, w), constant
    )
    return evaluations


def train_candidate(
    frames: TrainingFrames,
    schema: LeadSchema,
    config: TrainingConfig,
    trained_at: datetime,
    progress: Callable[[str], None] = lambda _: None,
) -> TrainedCandidate:
    """Build the point-in-time dataset, guard it, split it in time, fit, choose, evaluate;
    `progress` hears each step as it begins."""
    progress("Joining leads, score snapshots and outcomes as known at each scoring")
    dataset = build_training_set(frames, schema)
    require_outcomes(dataset, config.min_outcomes)
    dataset[WEIGHT] = censoring_weights(dataset)
    outer = time_split(dataset, config.holdout_fraction)
    progress("Looking for fields that leak the outcome or stand in for time")
    leaks = find_leaks(schema, outer.older, open_lead_rows(frames, schema))
    excluded = frozenset(leak.field for leak in leaks if leak.excluded)
    if len(excluded) == len(schema.model_fields_in_order):
        raise no_field_left(schema, leaks)
    kept = frozenset(f.name for f in schema.model_fields_in_order) - excluded
    shifts = time_shifts(schema, outer.older, outer.newer, kept)
    inner = time_split(outer.older, config.validation_fraction)
    progress(f"Fitting the candidate models on {len(inner.older):,} leads")
    data = encode_split(schema, inner.older, inner.newer, excluded)
    fitted, decisions = fit_models(schema, data, config.models, shifts)
    base_rate = float(np.average(inner.older[LABEL], weights=inner.older[WEIGHT]))
    volume = leads_per_month(frames)
    fitted = with_grades(fitted, inner.newer, base_rate, volume, config.sales_capacity)
    progress(f"Evaluating on the newest {len(outer.newer):,} leads")
    evaluations = evaluate(fitted, outer.newer, base_rate)
    train = pd.concat([inner.older, inner.newer], ignore_index=True)
    facts = RunFacts(
        trained_at=trained_at,
        training_window=_window(train),
        holdout_window=_window(outer.newer),
        n_train=len(train),
        n_fit=len(inner.older),
        n_validation=len(inner.newer),
        n_holdout=len(outer.newer),
        train_win_rate=float(np.average(train[LABEL], weights=train[WEIGHT])),
        max_censoring_weight=float(dataset[WEIGHT].max()),
        leads_per_month=volume,
        sales_capacity=config.sales_capacity,
        leaks=tuple(leaks),
        time_proxies=decisions,
        candidates={n: evaluations[n].result() for n in fitted if n in SERVABLE},
        baselines={n: evaluations[n].result() for n in BASELINES},
    )
    return TrainedCandidate(
        chosen=choose(fitted, config.models.candidates),
        fitted=fitted,
        evaluations=evaluations,
        dataset=dataset,
        train=train,
        holdout=outer.newer,
        leaks=leaks,
        facts=facts,
    )
