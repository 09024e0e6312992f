"""Training and the registry: `train`, and moving the champion by hand."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from features.schema import load_schema
from serving.cli.common import (
    err,
    now,
    open_registry,
    open_store,
    out,
    reported_errors,
    start,
    user,
)

if TYPE_CHECKING:
    from training.service import TrainingRun


def train(
    json_output: bool = typer.Option(False, "--json", help="Print only a JSON summary on stdout."),
) -> None:
    """Train on the store's closed leads, log to MLflow, register and maybe promote."""
    settings = start()
    from reports.quality_page import log_quality_page
    from training.service import train_and_register

    with reported_errors(), err.status("Training") as status:
        schema, client = load_schema(settings.schema_path), open_registry(settings)
        run = train_and_register(
            open_store(settings),
            client,
            schema,
            settings.tracking_target(),
            now(),
            settings.training_config(),
            status.update,
        )
        status.update("Writing the model-quality report")
        page = log_quality_page(client, run)
    if json_output:
        print(json.dumps(run.summary() | {"quality_report": page}))
        return
    _print_training(run, settings.model_name, page)


def _print_training(run: TrainingRun, model_name: str, page: str) -> None:
    from training.candidates import BASELINES
    from training.metrics import METRIC_NAMES

    card = run.card
    columns = {f"{card.model_kind} (v{run.model_version})": run.metrics}
    columns |= {name: run.candidate.evaluations[name].metrics for name in BASELINES}
    if run.champion_metrics:
        columns[f"champion (v{run.champion_version})"] = run.champion_metrics
    table = Table(title=f"{model_name}: holdout metrics", title_justify="left")
    table.add_column("metric")
    for title in columns:
        table.add_column(title, justify="right")
    for metric in METRIC_NAMES:
        table.add_row(metric, *(f"{values[metric]:.4f}" for values in columns.values()))
    out.print(table)
    for leak in card.leaks:
        verdict = "excluded" if leak.excluded else "kept (accepted in the schema)"
        out.print(f"[yellow]Leak guard:[/] {leak.field!r} {verdict}: {leak.why}")
    window = card.training_window
    out.print(
        f"Trained on {card.n_train:,} leads ({window.start:%Y-%m-%d} to {window.end:%Y-%m-%d}), "
        f"evaluated on the newest {card.n_holdout:,}."
    )
    verdict = "[green]promoted to champion[/]" if run.promoted else "[yellow]not promoted[/]"
    out.print(f"Version {run.model_version} {verdict}: {run.decision.reason}.")
    out.print(f"Model-quality report: {page.removeprefix('file://')} (or `make mlflow`)")


def promote(
    version: str = typer.Argument(..., metavar="VERSION", help="Registered version to serve."),
    reason: str = typer.Option(..., metavar="WHY", help="Why, kept on the version."),
    by: str | None = typer.Option(None, metavar="NAME", help="Who decided (default: you)."),
) -> None:
    """Make a registered version the champion by hand."""
    settings = start()
    from models.registry import RegistryError, promote_by_hand

    by = by or user()
    with reported_errors(RegistryError):
        promote_by_hand(open_registry(settings), settings.model_name, version, by, reason)
    out.print(f"{settings.model_name} version {version} is the champion (by {by}: {reason}).")


def rollback(
    reason: str = typer.Option(..., metavar="WHY", help="Why, kept on both versions."),
    by: str | None = typer.Option(None, metavar="NAME", help="Who decided (default: you)."),
) -> None:
    """Give the champion alias back to the previous champion."""
    settings = start()
    from models.registry import RegistryError
    from models.registry import rollback as roll_back

    by = by or user()
    with reported_errors(RegistryError):
        version = roll_back(open_registry(settings), settings.model_name, by, reason)
    out.print(f"{settings.model_name} version {version} is the champion again ({reason}).")
