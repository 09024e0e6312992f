"""`leadloop train` as a service: read the store, train, compare, log and register in MLflow.

This is the I/O edge around `training.pipeline`: it reads closed leads, scores the same holdout
with the current champion, logs the run, registers the new version and moves the aliases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from serving.settings import Settings
from store.repository import training_frames
from training.dataset import LABEL
from training.metrics import holdout_metrics
from training.pipeline import TrainedCandidate, TrainingConfig, holdout_leads, train_candidate
from training.promotion import PromotionDecision, decide_promotion

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    model_version: str
    promoted: bool
    promotion_reason: str
    champion_version: str | None
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    n_train: int
    n_holdout: int
    card: dict[str, Any]
    training_lead_ids: list[str]
    leaks: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        """The JSON document of `leadloop train --json`."""
        return {
            "run_id": self.run_id,
            "model_version": self.model_version,
            "promoted": self.promoted,
            "promotion_reason": self.promotion_reason,
            "champion_version": self.champion_version,
            "metrics": self.metrics,
            "champion_metrics": self.champion_metrics,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "leaks": self.leaks,
            "training_window": self.card["training_window"],
            "holdout_window": self.card["holdout_window"],
        }


def _flat_params(candidate: TrainedCandidate, config: TrainingConfig) -> dict[str, Any]:
    card = candidate.card
    lightgbm = {f"lgbm_{k}": v for k, v in card["lightgbm_params"].items()}
    return lightgbm | {
        "holdout_fraction": config.holdout_fraction,
        "validation_fraction": config.validation_fraction,
        "best_iteration": card["best_iteration"],
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


def train_and_register(
    settings: Settings,
    sessions: sessionmaker[Session],
    now: datetime,
    config: TrainingConfig | None = None,
    progress: Progress = lambda _: None,
) -> TrainingRun:
    """Train on the store's closed leads and register the result as a new model version."""
    config = config or TrainingConfig()
    schema = load_schema(settings.schema_path)
    progress("Reading closed leads from the store")
    with sessions() as session:
        frames = training_frames(session)
    progress(f"Training on {frames.outcomes['lead_id'].nunique():,} closed leads")
    candidate = train_candidate(frames, schema, config, trained_at=now)

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = mlflow_client(settings.mlflow_tracking_uri)
    progress("Scoring the holdout with the current champion")
    champion = load_alias(client, settings.model_name, CHAMPION)
    champion_metrics = None
    if champion is not None:
        probability = champion.scorer.predict_proba(holdout_leads(candidate))
        champion_metrics = holdout_metrics(candidate.holdout[LABEL].to_numpy(), probability)
    decision = decide_promotion(
        candidate.metrics["roc_auc"], champion_metrics["roc_auc"] if champion_metrics else None
    )

    progress("Logging the run and registering the model in MLflow")
    experiment_id = ensure_experiment(
        client, settings.mlflow_experiment, settings.artifact_location
    )
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{now:%Y%m%d-%H%M%S}"):
        run_id = mlflow.active_run().info.run_id
        mlflow.log_params(_flat_params(candidate, config))
        mlflow.log_metrics(candidate.metrics)
        if champion_metrics is not None:
            mlflow.log_metrics({f"champion_{k}": v for k, v in champion_metrics.items()})
        mlflow.log_text(schema.to_yaml(), "lead_schema.yaml")
        mlflow.log_dict(candidate.card, "model_card.json")
        mlflow.log_dict({"leaks": candidate.card["leaks"]}, "leaks.json")
        version = log_scorer(candidate.scorer, settings.model_name).version
        _tag_decision(client, settings.model_name, version, decision, champion)
    record_promotion(client, settings.model_name, version, decision.promote)
    return TrainingRun(
        run_id=run_id,
        model_version=str(version),
        promoted=decision.promote,
        promotion_reason=decision.reason,
        champion_version=champion.version if champion else None,
        metrics=candidate.metrics,
        champion_metrics=champion_metrics,
        n_train=candidate.card["n_train"],
        n_holdout=candidate.card["n_holdout"],
        card=candidate.card,
        training_lead_ids=candidate.dataset["lead_id"].tolist(),
        leaks=candidate.card["leaks"],
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
