"""`leadloop report` as a service: read the store and the champion, write every report.

Each report is an HTML page with a JSON twin; `alerts.json` and `kpis.json` feed the dashboard
(`index.html`), which the API serves as well, so `make report` and the running service show
the same numbers. The service takes plain values (a session factory, an MLflow client, names),
never the application's settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import load_champion
from reports import documents, pages, rate_change, source_quality
from reports.alerts import Alert
from reports.data import ReportData, read_report_data
from reports.feed import ALERTS_FILE, KPIS_FILE
from reports.funnel_plan import Target

DASHBOARD_FILE = "index.html"

Progress = Callable[[str], None]
#: The page of each report; the drift page is Evidently's own when there is enough to compare,
#: this one only says why there is not.
PAGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "source_quality": pages.source_quality_page,
    "follow_up": pages.follow_up_page,
    "funnel_plan": pages.funnel_plan_page,
    "model_health": pages.model_health_page,
    "drift": pages.drift_placeholder_page,
}


@dataclass(frozen=True)
class ReportConfig:
    #: Hours within which sales should contact a handed-over lead (the follow-up SLA).
    sla_hours: float = 24.0
    #: Days of recent leads the drift report compares with the training window.
    drift_days: int = 30
    #: Leads sales can work a month, for the funnel plan (None: not compared).
    sales_capacity: int | None = None
    #: How rarely, at most, chance alone names a stable source at one report.
    false_alarm_rate: float = rate_change.ALPHA


@dataclass(frozen=True)
class ReportRun:
    out: Path
    reports: dict[str, str]  # report name -> HTML file name
    alerts: list[dict[str, Any]]
    kpis: dict[str, Any]
    #: What the person who asked should know about the run (a date moved back).
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The JSON document of `leadloop report --json`."""
        return {
            "out": str(self.out),
            "dashboard": str(self.out / DASHBOARD_FILE),
            "reports": {name: str(self.out / file) for name, file in self.reports.items()},
            "alerts": self.alerts,
            "kpis": self.kpis,
            "warnings": self.warnings,
        }


def write_reports(
    sessions: sessionmaker[Session],
    client: MlflowClient,
    model_name: str,
    schema: LeadSchema,
    out: Path,
    as_of: datetime | None,
    target: Target | None,
    config: ReportConfig = ReportConfig(),
    progress: Progress = lambda _: None,
) -> ReportRun:
    """Compute every report, then write them all (the folder holds only this run's files)."""
    progress("Loading the champion")
    champion = load_champion(client, model_name)
    progress("Reading leads, outcomes and scores")
    data = read_report_data(sessions, schema, champion, as_of)
    found = compute_reports(data, schema, target, config, progress)
    progress("Writing the pages")
    replace_folder(out, render_files(data.as_of, found))
    warnings = []
    if data.asked_as_of is not None:
        warnings.append(
            f"no outcome after {data.as_of:%Y-%m-%d %H:%M} UTC, the store's last: the reports "
            f"judge as of then, not {data.asked_as_of:%Y-%m-%d %H:%M} UTC (what converted "
            "since is not known)"
        )
    return ReportRun(out, found.files, found.every_alert, found.kpis, warnings)


@dataclass(frozen=True)
class ComputedReports:
    documents: dict[str, documents.Document]
    alerts: dict[str, list[Alert]]
    drift_snapshot: Any  # Evidently's snapshot, None when there was too little to compare
    kpis: documents.Document  # the dashboard's figures, JSON-safe

    @property
    def files(self) -> dict[str, str]:
        """Report name -> its page's file name."""
        return {name: f"{name}.html" for name in self.documents}

    @property
    def every_alert(self) -> list[dict[str, Any]]:
        return [a.to_dict() for group in self.alerts.values() for a in group]


def compute_reports(
    data: ReportData,
    schema: LeadSchema,
    target: Target | None,
    config: ReportConfig,
    progress: Progress,
) -> ComputedReports:
    """Every report's document and alerts (no I/O)."""
    horizon = source_quality.outcome_horizon(data.leads, data.as_of)
    found: dict[str, tuple[documents.Document, list[Alert]]] = {}
    progress("Source quality and change detection")
    found["source_quality"] = documents.source_quality_report(
        data, horizon, config.false_alarm_rate
    )
    found["source_quality"] = documents.with_feed_health(found["source_quality"], data)
    progress("Follow-up SLA")
    found["follow_up"] = documents.follow_up_report(data, config.sla_hours)
    progress("Funnel plan")
    changes = found["source_quality"][0]["changes"]
    found["funnel_plan"] = documents.funnel_plan_report(
        data, horizon, target, config.sales_capacity, changes
    )
    progress("Model health")
    found["model_health"] = documents.model_health_report(data)
    progress("Drift (Evidently)")
    drift, drift_alerts, snapshot = documents.drift_report(data, schema, config.drift_days)
    found["drift"] = drift, drift_alerts
    return ComputedReports(
        documents={name: document for name, (document, _) in found.items()},
        alerts={name: alerts for name, (_, alerts) in found.items()},
        drift_snapshot=snapshot,
        kpis=documents.json_safe(documents.kpis(data, config.sla_hours)),
    )


def render_files(as_of: pd.Timestamp, found: ComputedReports) -> dict[str, str]:
    """File name -> text of every page, JSON twin, the alerts, the KPIs and the dashboard."""
    texts: dict[str, str] = {}
    for name, document in found.documents.items():
        alerts = [a.to_dict() for a in found.alerts[name]]
        dated = documents.json_safe(document | {"as_of": as_of.isoformat(), "alerts": alerts})
        texts[f"{name}.json"] = _dumps(dated)
        if name == "drift" and found.drift_snapshot is not None:
            evidently = found.drift_snapshot.get_html_str(as_iframe=False)
            texts["drift.html"] = pages.evidently_drift_page(evidently, dated)
        else:
            texts[f"{name}.html"] = PAGES[name](dated)
    texts[ALERTS_FILE] = _dumps(found.every_alert)
    texts[KPIS_FILE] = _dumps(found.kpis)
    texts[DASHBOARD_FILE] = pages.dashboard_page(found.kpis, found.files, found.every_alert)
    return texts


def _dumps(document: Any) -> str:
    return json.dumps(document, indent=1, allow_nan=False)


#: The names of the files the last run wrote into its folder: the only files a later run removes.
MANIFEST_FILE = ".leadloop-reports.json"


def replace_folder(out: Path, texts: dict[str, str]) -> None:
    """Write every file beside its final name, then move each in place (no reader sees half a
    file), and remove what the previous run wrote that this one did not. `--out` may name a
    folder that holds other files: only those in the previous run's manifest are removed."""
    out.mkdir(parents=True, exist_ok=True)
    previous = _previously_written(out)
    for name, text in {**texts, MANIFEST_FILE: _dumps(sorted(texts))}.items():
        partial = out / f".{name}.partial"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out / name)
    for stale in set(previous) - set(texts):
        (out / stale).unlink(missing_ok=True)


def _previously_written(out: Path) -> list[str]:
    """The file names of the previous run's manifest (none if it is missing or damaged)."""
    try:
        names = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return (
        [n for n in names if isinstance(n, str) and Path(n).name == n]
        if isinstance(names, list)
        else []
    )
