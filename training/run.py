"""`leadloop train` as a service: read the store, train, compare, log and register in MLflow.

This is the I/O edge around `training.pipeline`: it reads closed leads, scores the same holdout
with the current champion, applies the promotion gate, logs the run, registers the new version
and moves the aliases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import mlflow
from mlflow import MlflowClient
from sqlalchemy.orm import Session, sessionmaker

from features.schema import load_schema
from models.registry import (
    CHAMPION,
    LoadedScorer,
    ensure_experiment,
    load_alias,
    log_scorer,
    mlflow_client,
    record_promotion,
)
from models.scorer import ScorerFormatError
from reports.model_quality import render_html
from serving.settings import Settings
from store.repository import training_frames
from training.candidates import SERVABLE
from training.dataset import LABEL, WEIGHT
from training.evaluation import quality_report
from training.metrics import holdout_metrics
from training.pipeline import TrainedCandidate, TrainingConfig, holdout_leads, train_candidate
from training.promotion import PromotionDecision, compare_auc, decide_promotion

log = logging.getLogger("leadloop.training")
Progress = Callable[[str], None]
REPORT_HTML = "quality_report.html"
REPORT_JSON = "quality_report.json"


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    model_version: str
    decision: PromotionDecision
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    candidate: TrainedCandidate
    report_uri: str

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    @property
    def metrics(self) -> dict[str, float]:
        return self.candidate.metrics

    @property
    def card(self) -> dict[str, Any]:
        return self.candidate.card

    @property
    def training_lead_ids(self) -> list[str]:
        return self.candidate.dataset["lead_id"].tolist()

    def summary(self) -> dict[str, Any]:
        """The JSON document of `leadloop train --json`."""
        card = self.card
        return {
            "run_id": self.run_id,
            "model_version": self.model_version,
            "model_kind": card["model_kind"],
            "promoted": self.promoted,
            "promotion_reason": self.decision.reason,
            "comparisons": [c.to_dict() for c in self.decision.comparisons],
            "champion_version": self.champion_version,
            "metrics": self.metrics,
            "champion_metrics": self.champion_metrics,
            "baselines": {name: b["holdout"] for name, b in card["baselines"].items()},
            "candidates": card["candidates"],
            "leaks": card["leaks"],
            "n_train": card["n_train"],
            "n_holdout": card["n_holdout"],
            "training_window": card["training_window"],
            "holdout_window": card["holdout_window"],
            "quality_report": self.report_uri,
        }


def _flat_params(candidate: TrainedCandidate, config: TrainingConfig) -> dict[str, Any]:
    card = candidate.card
    lightgbm = {f"lgbm_{k}": v for k, v in card["model_info"].get("params", {}).items()}
    return lightgbm | {
        "model_kind": candidate.chosen,
        "holdout_fraction": config.holdout_fraction,
        "validation_fraction": config.validation_fraction,
        "best_iteration": card["model_info"].get("best_iteration", "n/a"),
        "schema_name": candidate.scorer.schema.name,
        "schema_version": candidate.scorer.schema.version,
        "features": ",".join(candidate.scorer.feature_fields),
        "excluded_fields": ",".join(x.field for x in candidate.leaks if x.excluded) or "none",
        "n_train": card["n_train"],
        "n_validation": card["n_validation"],
        "n_holdout": card["n_holdout"],
        "train_start": card["training_window"]["start"],
        "train_end": card["training_window"]["end"],
        "holdout_start": card["holdout_window"]["start"],
        "holdout_end": card["holdout_window"]["end"],
        "grade_cutoffs": candidate.scorer.grades.to_dict(),
    }


def gate(
    candidate: TrainedCandidate, champion: LoadedScorer | None
) -> tuple[TrainedCandidate, PromotionDecision, dict[str, float] | None]:
    """Compare the challenger with the best baseline and the champion on the same holdout.

    A challenger that does not clearly beat the logistic regression gives way to it: the
    regression is servable with exact explanations, and the served model must never be
    worse than the best baseline. It must then beat the rules score in turn.
    """
    y, w = candidate.holdout[LABEL].to_numpy(), candidate.holdout[WEIGHT].to_numpy()
    baseline = candidate.best_baseline
    versus_baseline = compare_auc(
        y, candidate.holdout_probability, baseline.probability, baseline.name, w
    )
    if not versus_baseline.low > 0 and baseline.name in SERVABLE:
        # A second look at the holdout, between two models: said in the reason.
        switched, decision, champion_metrics = gate(candidate.switch(baseline.name), champion)
        note = (
            f"{candidate.chosen} did not clearly beat the {baseline.name} on the holdout "
            f"({versus_baseline.difference:+.4f} AUC [{versus_baseline.low:+.4f}, "
            f"{versus_baseline.high:+.4f}]), so the {baseline.name} was put to the gate: "
        )
        return switched, replace(decision, reason=note + decision.reason), champion_metrics
    challenger = candidate.holdout_probability
    if champion is None:
        return candidate, decide_promotion(versus_baseline, None), None
    probability = champion.scorer.predict_proba(holdout_leads(candidate))
    versus_champion = compare_auc(y, challenger, probability, f"version {champion.version}", w)
    decision = decide_promotion(versus_baseline, versus_champion)
    return candidate, decision, holdout_metrics(y, probability, w)


def _champion(client: MlflowClient, model_name: str) -> tuple[LoadedScorer | None, str]:
    """The champion, or None and why it cannot be compared (written by another leadloop)."""
    try:
        return load_alias(client, model_name, CHAMPION), ""
    except ScorerFormatError as exc:
        log.warning("the champion cannot be loaded, so it is not compared: %s", exc)
        return None, f"the champion could not be loaded by this leadloop ({exc})"


def train_and_register(
    settings: Settings,
    sessions: sessionmaker[Session],
    now: datetime,
    config: TrainingConfig | None = None,
    progress: Progress = lambda _: None,
) -> TrainingRun:
    """Train on the store's closed leads and register the result as a new model version."""
    config = config or TrainingConfig(
        min_outcomes=settings.min_outcomes, sales_capacity=settings.sales_capacity
    )
    schema = load_schema(settings.schema_path)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = mlflow_client(settings.mlflow_tracking_uri)
    progress("Loading the current champion")
    champion, unreadable = _champion(client, settings.model_name)
    progress("Reading closed leads from the store")
    with sessions() as session:
        frames = training_frames(session)
    progress(f"Training on {frames.outcomes['lead_id'].nunique():,} closed leads")
    candidate = train_candidate(frames, schema, config, trained_at=now)

    progress("Comparing with the baselines and the current champion")
    candidate, decision, champion_metrics = gate(candidate, champion)
    if unreadable:
        decision = replace(decision, reason=f"{unreadable}; {decision.reason}")

    progress("Logging the run and registering the model in MLflow")
    experiment_id = ensure_experiment(
        client, settings.mlflow_experiment, settings.artifact_location
    )
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{now:%Y%m%d-%H%M%S}"):
        run_id = mlflow.active_run().info.run_id
        mlflow.log_params(_flat_params(candidate, config))
        mlflow.log_metrics(candidate.metrics)
        for name, evaluation in candidate.evaluations.items():
            mlflow.log_metrics({f"{name}.{k}": v for k, v in evaluation.metrics.items()})
        if champion_metrics is not None:
            mlflow.log_metrics({f"champion.{k}": v for k, v in champion_metrics.items()})
        mlflow.log_text(schema.to_yaml(), "lead_schema.yaml")
        mlflow.log_dict(candidate.card, "model_card.json")
        mlflow.log_dict({"leaks": candidate.card["leaks"]}, "leaks.json")
        version = str(log_scorer(candidate.scorer, settings.model_name).version)
        _tag_decision(client, settings.model_name, version, decision, champion)
        progress("Writing the model-quality report")
        previous = {"version": champion.version, "metrics": champion_metrics} if champion else None
        report = quality_report(candidate, decision, previous, version)
        mlflow.log_dict(report, REPORT_JSON)
        mlflow.log_text(render_html(report), REPORT_HTML)
        report_uri = mlflow.get_artifact_uri(REPORT_HTML)
    record_promotion(client, settings.model_name, version, decision.promote)
    return TrainingRun(
        run_id=run_id,
        model_version=version,
        decision=decision,
        champion_version=champion.version if champion else None,
        champion_metrics=champion_metrics,
        candidate=candidate,
        report_uri=report_uri,
    )


def _tag_decision(
    client: MlflowClient,
    model_name: str,
    version: str,
    decision: PromotionDecision,
    champion: LoadedScorer | None,
) -> None:
    tags = {
        "promoted": str(decision.promote).lower(),
        "promotion_reason": decision.reason,
        "compared_with_version": champion.version if champion else "none",
    }
    mlflow.set_tags(tags)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
