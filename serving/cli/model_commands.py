"""Training and the registry: `train`, and moving the champion by hand."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema, load_schema, parse_schema
from serving.cli.common import (
    err,
    json_failures,
    now,
    open_registry,
    open_store,
    out,
    reported_errors,
    start,
    user,
)
from serving.settings import Settings
from store.repository import latest_import
from store.schema_fit import SchemaMismatchError, check_schema_fits_store, fields_list
from store.tables import Import

if TYPE_CHECKING:
    from models.card import ModelCard, TimeProxyDecision
    from training.service import TrainingRun


def train(
    schema_file: Path | None = typer.Option(
        None,
        "--schema",
        metavar="FILE",
        help="Lead schema (default: LEADLOOP_SCHEMA, else the one the last import used).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print only a JSON summary on stdout."),
) -> None:
    """Train on the store's closed leads, log to MLflow, register and maybe promote."""
    with json_failures(json_output):
        settings = start()
        from reports.quality_page import log_quality_page
        from training.service import train_and_register

        with reported_errors(SchemaMismatchError), err.status("Training") as status:
            sessions = open_store(settings)
            schema = _checked_schema(schema_file, settings, sessions)
            client = open_registry(settings)
            run = train_and_register(
                sessions,
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


@dataclass(frozen=True)
class SchemaChoice:
    """The schema `train` uses, the file messages name, and why that one."""

    schema: LeadSchema
    path: Path
    why: str


def choose_schema(
    option: Path | None, settings: Settings, sessions: sessionmaker[Session]
) -> SchemaChoice:
    """`--schema`, else LEADLOOP_SCHEMA if set, else the schema the store's last import used,
    else the bundled demo schema: an imported store trains on its own columns unasked."""
    if option is not None:
        return SchemaChoice(load_schema(option), option, "--schema")
    if "schema_path" in settings.model_fields_set:
        return SchemaChoice(
            load_schema(settings.schema_path), settings.schema_path, "LEADLOOP_SCHEMA"
        )
    with sessions() as session:
        last = latest_import(session)
    if last is None:
        demo = settings.schema_path
        return SchemaChoice(
            load_schema(demo), demo, "the bundled demo schema: the store has no import"
        )
    return _imported_schema(last)


def _imported_schema(last: Import) -> SchemaChoice:
    """The schema file the last import used or, if it is gone, the copy the store kept."""
    path = Path(last.schema_path)
    why = (
        f"used by the last import, of {last.file_name}; `serve` and `report` read "
        "LEADLOOP_SCHEMA: set it to this file for them"
    )
    if path.is_file():
        return SchemaChoice(load_schema(path), path, why)
    kept = parse_schema(last.schema_yaml, origin=f"the copy of {path} kept with the last import")
    return SchemaChoice(kept, path, f"the file is gone: the copy kept in the store; {why}")


def _checked_schema(
    option: Path | None, settings: Settings, sessions: sessionmaker[Session]
) -> LeadSchema:
    """The schema to train with, said on stderr, refused when the stored leads lack most of its
    model fields (an hour of training would find that out the hard way)."""
    choice = choose_schema(option, settings, sessions)
    err.print(escape(f"Schema: {choice.path} ({choice.why})"))
    fit = check_schema_fits_store(sessions, choice.schema, choice.path)
    if fit.missing:
        missing = f"{len(fit.missing)} of the {len(fit.model_fields)} model fields"
        warning = f"{missing} are in no stored lead: {fields_list(fit.missing)}"
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    return choice.schema


def _by_field(decisions: tuple[TimeProxyDecision, ...]) -> dict[str, list[TimeProxyDecision]]:
    grouped: dict[str, list[TimeProxyDecision]] = {}
    for decision in decisions:
        grouped.setdefault(decision.field, []).append(decision)
    return grouped


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
    for field, decisions in _by_field(card.time_proxies).items():
        verdicts = ", ".join(
            f"{d.model_kind} {'drops' if d.excluded else 'keeps'} it "
            f"({d.auc_with - d.auc_without:+.4f} AUC with it)"
            for d in decisions
        )
        shift = decisions[0].shift_auc
        out.print(f"[yellow]Time proxy:[/] {field!r} moved with time (AUC {shift:.2f}); {verdicts}")
    window = card.training_window
    if card.model_info.refit_leads:
        out.print(
            f"Served model refit on all {card.model_info.refit_leads:,} closed leads "
            f"(the holdout figures are those of the model the gate judged); {_intercept(card)}."
        )
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


def _intercept(card: ModelCard) -> str:
    settled = card.model_info.recalibration_leads
    if settled:
        return f"its intercept follows the {settled:,} newest leads whose outcomes have settled"
    return "its calibration is the validation's: too few of the newest leads have settled"
