"""The `leadloop` command line: parse options, call one service, print the result.

Progress and logs go to stderr, results to stdout, so `--json` output can be piped.
Bad input exits with code 2 and a one-line reason, never a traceback.
"""

from __future__ import annotations

import getpass
import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from mlflow.exceptions import MlflowException
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from features.schema import DEMO_SCHEMA_PATH, SchemaError, load_schema
from features.schema_inference import ColumnRoles
from serving.settings import Settings
from store.db import make_engine, migrate, session_factory
from store.export_reader import ImportFileError
from store.import_plan import OutcomeMapping
from store.importing import ImportReport, ImportRequest, MalformedRowsError, import_file
from store.row_order import RowOrder
from training.split import NotEnoughDataError

if TYPE_CHECKING:  # importing MLflow takes seconds: only the commands that need it do
    from mlflow import MlflowClient

    from training.run import TrainingRun

app = typer.Typer(
    help="leadloop: lead scores with reasons, learned from closed sales outcomes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _start() -> Settings:
    """Send logs to stderr (stdout is for results) and read the settings."""
    logging.basicConfig(
        level=logging.WARNING, handlers=[RichHandler(console=err, show_path=False)], force=True
    )
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise _fail(f"invalid settings: {problems}") from None


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable a settings error is about (an alias carries the prefix)."""
    name = "_".join(map(str, loc)).upper()
    return name if name.startswith("LEADLOOP_") else f"LEADLOOP_{name or 'SETTINGS'}"


def _now() -> datetime:
    return datetime.now(UTC)


def _sessions(settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(settings.database_url)
    migrate(engine)
    return session_factory(engine)


@contextmanager
def _reported_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn errors of configuration and of reachable services (and `also`, a command's own
    domain errors) into a message and exit code 2."""
    try:
        yield
    except (SchemaError, NotEnoughDataError, ImportFileError, *also) as exc:
        raise _fail(str(exc)) from None
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise _fail(f"the store at LEADLOOP_DATABASE_URL failed: {detail}") from None
    except MlflowException as exc:
        raise _fail(f"MLflow at LEADLOOP_MLFLOW_TRACKING_URI failed: {exc.message}") from None


@app.command("demo-data")
def demo_data(
    leads: int = typer.Option(24_000, min=100, help="Number of leads to generate."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same funnel."),
    if_empty: bool = typer.Option(False, "--if-empty", help="Do nothing if the store has leads."),
) -> None:
    """Fill an empty store with the bundled synthetic B2B demo funnel."""
    from store.demo_funnel import END, START, generate_demo_funnel, load_demo_funnel
    from store.repository import count_leads

    settings = _start()
    with _reported_errors():
        schema = load_schema(settings.schema_path)
        if schema != load_schema(DEMO_SCHEMA_PATH):
            raise _fail(f"demo data follows the bundled demo schema, not {settings.schema_path}")
        sessions = _sessions(settings)
        with sessions() as session:
            existing = count_leads(session)
        if existing and if_empty:
            err.print(f"The store already holds {existing:,} leads; no demo data added.")
            return
        if existing:
            raise _fail(f"the store already holds {existing:,} leads; demo data needs an empty one")
        with err.status(f"Generating {leads:,} demo leads (seed {seed})"):
            funnel = generate_demo_funnel(leads, seed)
            with sessions.begin() as session:
                counts = load_demo_funnel(session, funnel, schema, settings.pii_key_bytes, _now())
    closed = len(funnel.outcomes)
    won = int((funnel.outcomes["outcome"] == "won").sum())
    err.print(
        f"Demo funnel stored: {leads:,} leads from {START:%Y-%m-%d} to {END:%Y-%m-%d}, "
        f"{closed:,} closed ({won / closed:.1%} won), {leads - closed:,} still open; "
        f"{counts.accepted:,} events in all."
    )


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="CSV or Parquet export, one row per lead."),
    id_column: str = typer.Option(..., "--id", help="Column with the CRM's lead id."),
    outcome: str = typer.Option(..., help="Column with the sales outcome or stage."),
    won: list[str] = typer.Option(..., help="Outcome value meaning won (repeatable)."),
    lost: list[str] = typer.Option([], help="Outcome value meaning lost (repeatable)."),
    disqualified: list[str] = typer.Option([], help="Value meaning disqualified (repeatable)."),
    time: str | None = typer.Option(None, help="Column with when the lead was created."),
    closed_at: str | None = typer.Option(None, help="Column with when the outcome happened."),
    source: str | None = typer.Option(None, help="Column with the lead source / channel."),
    lead_type: str | None = typer.Option(None, help="Column with the lead type (MQL, SQL...)."),
    drop: list[str] = typer.Option([], help="Column to leave out entirely (repeatable)."),
    sep: str = typer.Option(",", help="CSV field separator (one character)."),
    row_order: RowOrder = typer.Option(
        RowOrder.AUTO, help="Without --time: which end is newest (auto: read an id sequence)."
    ),
    skip_malformed: bool = typer.Option(False, help="Import the readable rows, list the rest."),
    schema_out: Path | None = typer.Option(
        None, help="Where to write the inferred schema (default var/schemas/FILE.yaml)."
    ),
) -> None:
    """Load a CRM export into the store and infer its lead schema for review."""
    settings = _start()
    if len(sep) != 1:
        raise _fail(f"--sep must be one character, not {sep!r}")
    with _reported_errors():
        request = ImportRequest(
            path=file,
            roles=ColumnRoles(id=id_column, time=time, source=source, lead_type=lead_type),
            outcomes=OutcomeMapping(
                outcome, frozenset(won), frozenset(lost), frozenset(disqualified)
            ),
            schema_out=schema_out or Path("var/schemas") / f"{file.stem}.yaml",
            drop=tuple(drop),
            closed_at=closed_at,
            sep=sep,
            row_order=row_order,
            skip_malformed=skip_malformed,
        )
        try:
            report = import_file(request, _sessions(settings), settings.pii_key_bytes, _now())
        except MalformedRowsError as exc:
            for bad in exc.malformed[:20]:
                err.print(f"line {bad.line}: {bad.reason}")
            more = len(exc.malformed) - 20
            raise _fail(f"{exc}{f' ({more} more not shown)' if more > 0 else ''}") from None
    _print_import(report, request)


def _print_import(report: ImportReport, request: ImportRequest) -> None:
    plan, counts = report.plan, report.counts
    for bad in plan.malformed[:20]:
        err.print(f"skipped line {bad.line}: {bad.reason}")
    closed = Counter(event["outcome"] for event in plan.outcomes)
    out.print(
        f"Imported {len(plan.leads):,} leads: "
        + ", ".join(f"{closed[o]:,} {o}" for o in ("won", "lost", "disqualified"))
        + f", {plan.n_open:,} open. Outcome events: {counts.accepted:,} new, "
        f"{counts.duplicates:,} already stored."
    )
    if plan.time_from_row_order:
        order = "newest first" if plan.newest_first else "oldest first"
        why = f", as {report.sequence!r} runs" if report.sequence else ""
        out.print(f"No --time column: row order stands for time order, read {order}{why}.")
    verb = "Inferred schema written to" if report.schema_written else "Used the existing schema"
    features = sum(f.is_model_input for f in report.schema.fields)
    out.print(f"{verb} {request.schema_out} ({features} candidate model inputs); review it, then:")
    out.print(f"  LEADLOOP_SCHEMA={request.schema_out} leadloop train")


@app.command()
def train(
    json_output: bool = typer.Option(False, "--json", help="Print only a JSON summary on stdout."),
) -> None:
    """Train on the store's closed leads, log to MLflow, register and maybe promote."""
    from training.run import train_and_register

    settings = _start()
    with _reported_errors(), err.status("Training") as status:
        run = train_and_register(settings, _sessions(settings), _now(), progress=status.update)
    if json_output:
        print(json.dumps(run.summary()))
        return
    _print_training(run, settings.model_name)


def _print_training(run: TrainingRun, model_name: str) -> None:
    from training.candidates import BASELINES
    from training.metrics import METRIC_NAMES

    columns = {f"{run.card['model_kind']} (v{run.model_version})": run.metrics}
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
    for leak in run.card["leaks"]:
        verdict = "excluded" if leak["excluded"] else "kept (accepted in the schema)"
        out.print(f"[yellow]Leak guard:[/] {leak['field']!r} {verdict}: {leak['why']}")
    window = run.card["training_window"]
    out.print(
        f"Trained on {run.card['n_train']:,} leads ({window['start'][:10]} to "
        f"{window['end'][:10]}), evaluated on the newest {run.card['n_holdout']:,}."
    )
    verdict = "[green]promoted to champion[/]" if run.promoted else "[yellow]not promoted[/]"
    out.print(f"Version {run.model_version} {verdict}: {run.decision.reason}.")
    report = run.report_uri.removeprefix("file://")
    out.print(f"Model-quality report: {report} (or `make mlflow`, run {run.run_id})")


@app.command()
def report(
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder for the reports (default LEADLOOP_REPORTS_DIR)."
    ),
    as_of: datetime | None = typer.Option(
        None, "--as-of", help="Report as of this time (default: the store's latest activity)."
    ),
    target: str | None = typer.Option(
        None, help="Revenue target for the funnel plan, e.g. 250000/quarter."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print only a JSON summary on stdout."),
) -> None:
    """Write the marketer reports, their JSON twins, the alerts and the dashboard."""
    from reports.funnel_plan import parse_target
    from reports.run import write_reports

    settings = _start()
    try:
        goal = parse_target(target) if target else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    moment = as_of.replace(tzinfo=as_of.tzinfo or UTC) if as_of else None
    folder = out_dir or settings.reports_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)  # fail before the work, not after it
    except OSError as exc:
        raise _fail(f"cannot write reports to {folder}: {exc.strerror}") from None
    with _reported_errors(), err.status("Writing reports") as status:
        run = write_reports(settings, _sessions(settings), folder, moment, goal, status.update)
    if json_output:
        print(json.dumps(run.summary()))
        return
    served = " (also at /reports/ when serving)" if folder == settings.reports_dir else ""
    out.print(f"Dashboard: {run.out / 'index.html'}{served}")
    for alert in run.alerts:
        out.print(
            f"[yellow]{alert['kind'].replace('_', ' ')}[/]: {alert['subject']} since "
            f"{alert['since']}: {alert['evidence']}"
        )
    if not run.alerts:
        out.print("[green]No alert.[/]")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return "unknown"


def _registry(settings: Settings) -> MlflowClient:
    from models.registry import mlflow_client

    return mlflow_client(settings.mlflow_tracking_uri)


@app.command()
def promote(
    version: str = typer.Argument(..., help="Registered version to serve."),
    reason: str = typer.Option(..., help="Why, kept on the version in the registry."),
    by: str | None = typer.Option(None, help="Who decided (default: this user)."),
) -> None:
    """Make a registered version the champion by hand."""
    from models.registry import RegistryError, promote_by_hand

    settings = _start()
    by = by or _user()
    with _reported_errors(RegistryError):
        promote_by_hand(_registry(settings), settings.model_name, version, by, reason)
    out.print(f"{settings.model_name} version {version} is the champion (by {by}: {reason}).")


@app.command()
def rollback(
    reason: str = typer.Option(..., help="Why, kept on both versions in the registry."),
    by: str | None = typer.Option(None, help="Who decided (default: this user)."),
) -> None:
    """Give the champion alias back to the previous champion."""
    from models.registry import RegistryError
    from models.registry import rollback as roll_back

    settings = _start()
    by = by or _user()
    with _reported_errors(RegistryError):
        version = roll_back(_registry(settings), settings.model_name, by, reason)
    out.print(f"{settings.model_name} version {version} is the champion again ({reason}).")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve the champion model over HTTP (FastAPI + uvicorn)."""
    import uvicorn

    from serving.app import create_app

    settings = _start()
    with _reported_errors():
        api = create_app(settings)
    uvicorn.run(api, host=host, port=port)
