"""What a training run leaves in MLflow: parameters, metrics, schema, card, leaks, quality
report, and the model as a new registered version with the gate's verdict as tags."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow import MlflowClient

from models.registry import ensure_experiment, log_scorer
from training.pipeline import TrainedCandidate, TrainingConfig
from training.promotion import GateResult

QUALITY_REPORT_JSON = "quality_report.json"


@dataclass(frozen=True)
class TrackingTarget:
    """Where a run is logged and its model registered, in the client's MLflow store."""

    model_name: str
    experiment: str
    #: Artifact location of the experiment if this run creates it (a path URI or any MLflow
    #: artifact URI; MLflow would otherwise use ./mlruns of the current directory).
    artifact_location: str


@contextmanager
def tracked_run(client: MlflowClient, target: TrackingTarget, run_name: str) -> Iterator[str]:
    """An active MLflow run in `client`'s store (MLflow's logging API works on the active run
    of its global tracking URI, so that is pointed at the client's store first)."""
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)  # `mlflow_client` keeps the registry there
    experiment_id = ensure_experiment(client, target.experiment, target.artifact_location)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        yield run.info.run_id


def run_params(candidate: TrainedCandidate, config: TrainingConfig) -> dict[str, Any]:
    """The run's parameters, flat, as MLflow shows and compares them."""
    card, scorer = candidate.card, candidate.scorer
    lightgbm = {f"lgbm_{k}": v for k, v in card.model_info.params.items()}
    holdout = card.holdout_window
    assert holdout is not None  # a trained candidate always has one
    return lightgbm | {
        "model_kind": candidate.chosen,
        "holdout_fraction": config.holdout_fraction,
        "validation_fraction": config.validation_fraction,
        "best_iteration": card.model_info.best_iteration or "n/a",
        "refit_leads": card.model_info.refit_leads or "not refit",
        "recalibration_leads": card.model_info.recalibration_leads or "validation's intercept",
        "schema_name": scorer.schema.name,
        "schema_version": scorer.schema.version,
        "features": ",".join(scorer.feature_fields),
        "excluded_fields": ",".join(card.excluded_fields) or "none",
        "n_train": card.n_train,
        "n_validation": card.n_validation,
        "n_holdout": card.n_holdout,
        "train_start": card.training_window.start.isoformat(),
        "train_end": card.training_window.end.isoformat(),
        "holdout_start": holdout.start.isoformat(),
        "holdout_end": holdout.end.isoformat(),
        "grade_cutoffs": scorer.grades.to_dict(),
    }


def log_results(result: GateResult, config: TrainingConfig) -> None:
    """Parameters, every model's holdout metrics, the lead schema, the card, the leaks and the
    time-proxy decisions."""
    candidate = result.candidate
    mlflow.log_params(run_params(candidate, config))
    mlflow.log_metrics(candidate.metrics)
    for name, evaluation in candidate.evaluations.items():
        mlflow.log_metrics({f"{name}.{k}": v for k, v in evaluation.metrics.items()})
    if result.champion_metrics is not None:
        mlflow.log_metrics({f"champion.{k}": v for k, v in result.champion_metrics.items()})
    card = candidate.card.model_dump(mode="json")
    mlflow.log_text(candidate.scorer.schema.to_yaml(), "lead_schema.yaml")
    mlflow.log_dict(card, "model_card.json")
    mlflow.log_dict({"leaks": card["leaks"], "time_proxies": card["time_proxies"]}, "leaks.json")


def register(
    client: MlflowClient, result: GateResult, model_name: str, champion_version: str | None
) -> str:
    """Register the challenger as a new version, tagged with the gate's verdict."""
    version = str(log_scorer(client, result.candidate.scorer, model_name).version)
    tags = {
        "promoted": str(result.decision.promote).lower(),
        "promotion_reason": result.decision.reason,
        "compared_with_version": champion_version or "none",
    }
    mlflow.set_tags(tags)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version
