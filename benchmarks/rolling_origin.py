"""Rolling-origin evaluation: is the served model as good as a plain regression on later leads?

One holdout is one draw of time. Here a dataset is cut at several moments; at each cut a
training run sees only what the store knew then (leads created, outcomes occurred and
snapshots scored before the cut), and every model is judged on the closed leads whose
features were known between that cut and the next (the last slice runs to the end), weighted
by censoring weights computed on the whole dataset. The models: the served model (the gate's
choice, refit as `leadloop train` registers it), the same model before the refit, the run's
rules score, the base rate, and a logistic regression written here with scikit-learn alone,
on every schema field known at scoring time but the leaks the run's guard excluded. That
regression is the yardstick: a served model that does worse than it has lost signal
somewhere. Each cut is reported on its own, failures included.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.schema import FieldType, LeadSchema
from store.repository import TrainingFrames
from training.candidates import records
from training.dataset import AS_OF, LABEL, WEIGHT, build_training_set, censoring_weights
from training.metrics import holdout_metrics
from training.pipeline import TrainedCandidate, TrainingConfig, train_candidate
from training.promotion import gate
from training.refit import refit_chosen

#: Where the cuts fall, as shares of the closed leads in the order their features were known:
#: each of the first test slices holds a tenth of the leads, the last one a fifth.
CUT_SHARES = (0.6, 0.7, 0.8)
#: Fewest won, and fewest not won, leads a test slice needs for its AUC to mean anything.
MIN_TEST_OUTCOMES = 50
#: The served model may trail the independent regression by this much AUC on a cut, no more.
TOLERANCE = 0.005
#: Categories rarer than this in the training leads share one "infrequent" level.
MIN_CATEGORY_COUNT = 10
MISSING = "<missing>"


def frames_known_at(frames: TrainingFrames, at: pd.Timestamp) -> TrainingFrames:
    """The store as it stood at `at`: leads created, outcomes occurred and snapshots scored
    before it; a lead created before `at` without an outcome before it is open.

    Lead attributes are as last stored: the store keeps no history of a lead's row. An import
    without dates gives each closed lead its outcome at its creation time, so such leads are
    closed from the moment they exist.
    """
    outcomes = frames.outcomes[_before(frames.outcomes["occurred_at"], at)]
    stored = [part for part in (frames.leads, frames.open_leads) if not part.empty]
    leads = pd.concat(stored or [frames.leads], ignore_index=True)
    leads = leads[_before(leads["created_at"], at)]
    closed = leads["lead_id"].isin(outcomes["lead_id"])
    snapshots = frames.snapshots[
        _before(frames.snapshots["scored_at"], at)
        & frames.snapshots["lead_id"].isin(outcomes["lead_id"])
    ]
    return TrainingFrames(
        leads=leads[closed].reset_index(drop=True),
        snapshots=snapshots.reset_index(drop=True),
        outcomes=outcomes.reset_index(drop=True),
        open_leads=leads[~closed].reset_index(drop=True),
    )


def _before(times: pd.Series, at: pd.Timestamp) -> pd.Series:
    return pd.to_datetime(times, utc=True) < at


def cut_times(rows: pd.DataFrame) -> list[pd.Timestamp]:
    """The `_as_of` of the lead at each of `CUT_SHARES` of the closed leads, oldest first."""
    ordered = rows[AS_OF].sort_values(kind="stable").reset_index(drop=True)
    return [ordered.iloc[int(len(ordered) * share)] for share in CUT_SHARES]


def slice_from(rows: pd.DataFrame, at: pd.Timestamp, until: pd.Timestamp | None) -> pd.DataFrame:
    """Closed leads whose features were known from `at` until `until` (None: the end)."""
    later = rows[AS_OF] >= at
    if until is not None:
        later &= rows[AS_OF] < until
    part = rows[later].reset_index(drop=True)
    won = int(part[LABEL].sum())
    if min(won, len(part) - won) < MIN_TEST_OUTCOMES:
        raise ValueError(
            f"the test slice from {at} has {won} won and {len(part) - won} other leads; "
            f"an AUC needs at least {MIN_TEST_OUTCOMES} of each: move the cuts"
        )
    return part


def independent_regression(schema: LeadSchema, fields: Sequence[str]) -> Pipeline:
    """A plain logistic regression on `fields`, built from scikit-learn parts alone.

    One-hot categories and booleans (missing is a level of its own, rare levels grouped) and
    standardised numbers (median-imputed, with a missing flag): what anyone would fit first,
    and sharing no code with leadloop's encoder, so a bug there cannot hide here.
    """
    numeric = [f for f in fields if schema.by_name[f].type is FieldType.NUMERIC]
    levels = [f for f in fields if f not in numeric]
    columns = ColumnTransformer(
        [
            (
                "levels",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist", min_frequency=MIN_CATEGORY_COUNT
                ),
                levels,
            ),
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                numeric,
            ),
        ]
    )
    return Pipeline([("columns", columns), ("regression", LogisticRegression(max_iter=5_000))])


def regression_input(rows: pd.DataFrame, schema: LeadSchema, fields: Sequence[str]) -> pd.DataFrame:
    """`fields` of `rows` as the independent regression reads them: numbers as floats (NaN
    when missing), every other field as text with `MISSING` for a missing value."""
    columns = {}
    for name in fields:
        values = rows[name]
        if schema.by_name[name].type is FieldType.NUMERIC:
            columns[name] = pd.to_numeric(values, errors="coerce").astype(float)
        else:
            columns[name] = values.astype(object).where(values.notna(), MISSING).astype(str)
    return pd.DataFrame(columns, index=rows.index)


def independent_probability(
    candidate: TrainedCandidate, schema: LeadSchema, test: pd.DataFrame
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The independent regression's probabilities of `test`, and the fields it read.

    Fitted on every lead the run learnt from (fitting, validation and holdout,
    censoring-weighted as the run weighted them), without the leaks the run excluded.
    """
    excluded = {leak.field for leak in candidate.leaks if leak.excluded}
    fields = tuple(f.name for f in schema.model_fields_in_order if f.name not in excluded)
    rows = candidate.dataset
    model = independent_regression(schema, fields).fit(
        regression_input(rows, schema, fields),
        rows[LABEL].to_numpy(),
        regression__sample_weight=rows[WEIGHT].to_numpy(),
    )
    return model.predict_proba(regression_input(test, schema, fields))[:, 1], fields


@dataclass(frozen=True)
class CutResult:
    """One cut: what the run learnt from, what it was judged on, and every model's metrics."""

    at: pd.Timestamp
    #: Share of the closed leads (in the order their features were known) before the cut.
    share: float
    n_train: int
    n_test: int
    test_win_rate: float
    served_kind: str
    #: Whether the gate would have promoted it; if not, the champion (here none: the rules
    #: fallback) would have kept serving.
    promoted: bool
    #: Holdout metrics on the test slice: served, not_refit, independent, rules, base_rate.
    metrics: dict[str, dict[str, float]]
    #: Fields the independent regression reads and the served model does not.
    served_lacks: tuple[str, ...]
    #: Settled newest leads the refit's intercept followed (0: the validation's was kept).
    recalibration_leads: int
    seconds: float

    def auc(self, model: str) -> float:
        return self.metrics[model]["roc_auc"]

    @property
    def versus_regression(self) -> float:
        return self.auc("served") - self.auc("independent")

    @property
    def passes(self) -> bool:
        return self.versus_regression >= -TOLERANCE

    @property
    def refit_gain(self) -> float:
        return self.auc("served") - self.auc("not_refit")

    @property
    def refit_log_loss_change(self) -> float:
        return self.metrics["served"]["log_loss"] - self.metrics["not_refit"]["log_loss"]


def evaluate_cut(
    frames: TrainingFrames,
    schema: LeadSchema,
    test: pd.DataFrame,
    at: pd.Timestamp,
    share: float,
) -> CutResult:
    """Train as `leadloop train` would have at `at` and judge every model on `test`."""
    started = time.perf_counter()
    config = TrainingConfig()
    candidate = train_candidate(frames_known_at(frames, at), schema, config, at.to_pydatetime())
    judgement = gate(candidate, None)
    judged = refit_chosen(judgement.candidate, config)
    served = judged.model.scorer
    scorers = {
        "served": served,
        "not_refit": judged.fitted[judged.chosen].scorer,
        "rules": judged.fitted["rules"].scorer,
    }
    probability = {
        name: scorer.predict_proba(records(test, scorer.feature_fields))
        for name, scorer in scorers.items()
    }
    probability["independent"], fields = independent_probability(candidate, schema, test)
    probability["base_rate"] = np.full(len(test), candidate.facts.train_win_rate)
    y, w = test[LABEL].to_numpy(), test[WEIGHT].to_numpy()
    return CutResult(
        at=at,
        share=share,
        n_train=len(candidate.dataset),
        n_test=len(test),
        test_win_rate=float(np.average(y, weights=w)),
        served_kind=judged.chosen,
        promoted=judgement.decision.promote,
        metrics={name: holdout_metrics(y, p, w) for name, p in probability.items()},
        served_lacks=tuple(f for f in fields if f not in served.feature_fields),
        recalibration_leads=judged.model.info.recalibration_leads or 0,
        seconds=time.perf_counter() - started,
    )


def rolling_origin(frames: TrainingFrames, schema: LeadSchema) -> list[CutResult]:
    """Every cut of `CUT_SHARES`, each judged on the closed leads up to the next cut."""
    rows = build_training_set(frames, schema)
    rows[WEIGHT] = censoring_weights(rows)
    cuts = cut_times(rows)
    ends: list[pd.Timestamp | None] = [*cuts[1:], None]
    slices = [slice_from(rows, at, until) for at, until in zip(cuts, ends, strict=True)]
    return [
        evaluate_cut(frames, schema, test, at, share)
        for at, test, share in zip(cuts, slices, CUT_SHARES, strict=True)
    ]


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at.hour or at.minute or at.second else f"{at:%Y-%m-%d}"


def _cut(result: CutResult) -> str:
    return f"{_when(result.at)} ({result.share:.0%})"


def _row(result: CutResult) -> str:
    served = result.served_kind if result.promoted else f"{result.served_kind} (not promoted)"
    difference = f"{result.versus_regression:+.4f}"
    if not result.passes:
        difference = f"**{difference} FAIL**"
    return (
        f"| {_cut(result)} | {result.n_train:,} | {result.n_test:,} "
        f"| {result.test_win_rate:.3f} | {served} | {result.auc('served'):.4f} "
        f"| {result.auc('not_refit'):.4f} | {result.auc('independent'):.4f} "
        f"| {result.auc('rules'):.4f} | {result.auc('base_rate'):.4f} | {difference} "
        f"| {result.refit_gain:+.4f} | {result.refit_log_loss_change:+.4f} "
        f"| {result.recalibration_leads:,} | {result.seconds:.0f} |"
    )


def table(name: str, results: list[CutResult]) -> list[str]:
    """A dataset's rolling-origin table, its pass count and what the served model did without."""
    passing = sum(r.passes for r in results)
    refit_better = sum(r.refit_gain > 0 for r in results)
    calibrated_better = sum(r.refit_log_loss_change < 0 for r in results)
    lacks = [
        f"- cut {_cut(r)}: the served {r.served_kind} does without "
        f"{', '.join(f'`{f}`' for f in r.served_lacks)}"
        for r in results
        if r.served_lacks
    ]
    return [
        f"### {name}",
        "",
        f"**{passing} of {len(results)} cuts pass** (served AUC >= independent regression's "
        f"- {TOLERANCE}). The refit raises the AUC on {refit_better} of {len(results)} cuts "
        f"and lowers the log loss on {calibrated_better}.",
        "",
        "| cut (share) | n train | n test | test win rate | served | served AUC "
        "| not refit | independent LR | rules | base rate | served - LR "
        "| refit - not (AUC) | refit - not (log loss) | settled | s |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: |",
        *[_row(r) for r in results],
        "",
        *(lacks or ["The served model reads every field the independent regression reads."]),
        "",
    ]


def verdict(results: dict[str, list[CutResult]]) -> str:
    """How many cuts of all datasets pass, naming each one that does not."""
    cuts = [(name, r) for name, of_dataset in results.items() for r in of_dataset]
    failing = [
        f"{name} at {_cut(r)}: {r.versus_regression:+.4f}" for name, r in cuts if not r.passes
    ]
    passing = f"**{len(cuts) - len(failing)} of {len(cuts)} cuts pass**"
    return f"{passing}; failing: {'; '.join(failing)}." if failing else f"{passing}."
