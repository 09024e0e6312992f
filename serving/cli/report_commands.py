"""`report`: the marketer reports, alerts and the dashboard."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape

from features.schema import load_schema
from serving.cli.common import err, fail, open_registry, open_store, out, reported_errors, start


def report(
    out_dir: Path | None = typer.Option(
        None, "--out", metavar="DIR", help="Folder for the reports (default LEADLOOP_REPORTS_DIR)."
    ),
    as_of: datetime | None = typer.Option(
        None,
        "--as-of",
        metavar="DATE",
        help="Report as of this time (default and latest: the last outcome).",
    ),
    target: str | None = typer.Option(
        None, metavar="AMOUNT/PERIOD", help="Revenue target of the funnel plan: 250000/quarter."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print only a JSON summary on stdout."),
) -> None:
    """Write the marketer reports, their JSON twins, the alerts and the dashboard."""
    settings = start()
    from reports.funnel_plan import parse_target
    from reports.service import write_reports

    try:
        goal = parse_target(target) if target else None
    except ValueError as exc:
        raise fail(str(exc)) from None
    moment = as_of.replace(tzinfo=as_of.tzinfo or UTC) if as_of else None
    folder = out_dir or settings.reports_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)  # fail before the work, not after it
    except OSError as exc:
        raise fail(f"cannot write reports to {folder}: {exc.strerror}") from None
    with reported_errors(), err.status("Writing reports") as status:
        run = write_reports(
            open_store(settings),
            open_registry(settings),
            settings.model_name,
            load_schema(settings.schema_path),
            folder,
            moment,
            goal,
            settings.report_config(),
            status.update,
        )
    for warning in run.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
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
