"""`leadloop train` as a service: read the store, train, judge, log and register in MLflow.

The I/O edge around `training.pipeline`: it takes plain values (a session factory, an MLflow
client, names), never the application's settings.
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

from features.schema import LeadSchema
from models.card import ModelCard
from models.registry import ChampionLookup, load_champion, record_promotion
from store.repository import training_frames
from training.evaluation import quality_report
from training.pipeline import TrainedCandidate, TrainingConfig, train_candidate
from training.promotion import GateResult, PromotionDecision, gate
from training.refit import refit_chosen
from training.tracking import (
    QUALITY_REPORT_JSON,
    TrackingTarget,
    log_results,
    register,
    tracked_run,
)

log = logging.getLogger("leadloop.training")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainingRun:
    """A finished run: its MLflow run and version, the gate's verdict, the quality report."""

    run_id: str
    model_version: str
    result: GateResult
    champion_version: str | None
    #: The model-quality report's numbers (also logged as `quality_report.json`).
    quality_report: dict[str, Any]

    @property
    def candidate(self) -> TrainedCandidate:
        return self.result.candidate

    @property
    def decision(self) -> PromotionDecision:
        return self.result.decision

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    @property
    def metrics(self) -> dict[str, float]:
        return self.candidate.metrics

    @property
    def champion_metrics(self) -> dict[str, float] | None:
        return self.result.champion_metrics

    @property
    def card(self) -> ModelCard:
        return self.candidate.card

    @property
    def training_lead_ids(self) -> list[str]:
        return self.candidate.dataset["lead_id"].tolist()

    def summary(self) -> dict[str, Any]:
        """The JSON document of `leadloop train --json` (the caller adds the report's link)."""
        card = self.card.model_dump(mode="json")
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
            "time_proxies": card["time_proxies"],
            "refit_leads": card["model_info"]["refit_leads"],
            "recalibration_leads": card["model_info"]["recalibration_leads"],
            "n_train": card["n_train"],
            "n_holdout": card["n_holdout"],
            "training_window": card["training_window"],
            "holdout_window": card["holdout_window"],
        }


def train_and_register(
    sessions: sessionmaker[Session],
    client: MlflowClient,
    schema: LeadSchema,
    target: TrackingTarget,
    now: datetime,
    config: TrainingConfig | None = None,
    progress: Progress = lambda _: None,
) -> TrainingRun:
    """Train on the store's closed leads and register the result as a new model version."""
    config = config or TrainingConfig()
    progress("Loading the current champion")
    champion = load_champion(client, target.model_name)
    progress("Reading closed leads from the store")
    with sessions() as session:
        frames = training_frames(session)
    candidate = train_candidate(frames, schema, config, trained_at=now, progress=progress)
    progress("Comparing with the baselines and the current champion")
    result = judge(candidate, champion, config, progress)
    progress("Logging the run and registering the model in MLflow")
    return register_run(client, target, result, champion, now, config)


def judge(
    candidate: TrainedCandidate,
    champion: ChampionLookup,
    config: TrainingConfig,
    progress: Progress = lambda _: None,
) -> GateResult:
    """The promotion gate, then the refit of the model it chose (when `config.refit`); a
    champion that cannot be loaded is not compared, and the reason says so."""
    result = gate(candidate, champion.champion)
    if config.refit:
        progress(f"Refitting the {result.candidate.chosen} on every closed lead")
        result = replace(result, candidate=refit_chosen(result.candidate, config))
    if champion.problem is None:
        return result
    log.warning("the champion is not compared: %s", champion.problem)
    reason = f"the champion was not compared ({champion.problem}); {result.decision.reason}"
    return replace(result, decision=replace(result.decision, reason=reason))


def register_run(
    client: MlflowClient,
    target: TrackingTarget,
    result: GateResult,
    champion: ChampionLookup,
    now: datetime,
    config: TrainingConfig,
) -> TrainingRun:
    """Log a judged run to MLflow, register its model and move the aliases by the verdict."""
    champion_version = champion.champion.version if champion.champion else None
    with tracked_run(client, target, f"train-{now:%Y%m%d-%H%M%S}") as run:
        log_results(result, config)
        version = register(client, result, target.model_name, champion_version)
        previous = (
            {"version": champion_version, "metrics": result.champion_metrics}
            if champion_version
            else None
        )
        report = quality_report(result.candidate, result.decision, previous, version)
        mlflow.log_dict(report, QUALITY_REPORT_JSON)
    record_promotion(client, target.model_name, version, result.decision.promote)
    return TrainingRun(
        run_id=run,
        model_version=version,
        result=result,
        champion_version=champion_version,
        quality_report=report,
    )
