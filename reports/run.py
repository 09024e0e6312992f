"""`leadloop report` as a service: read the store and the champion, write every report.

Each report is an HTML page with a JSON twin; `alerts.json` and `kpis.json` feed the dashboard
(`index.html`), which the API serves as well, so `make report` and the running service show
the same numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema, load_schema
from models.registry import CHAMPION, LoadedScorer, load_alias, mlflow_client
from models.scorer import ScorerFormatError
from reports import follow_up, pages, source_quality
from reports.alerts import Alert
from reports.data import ReportData, read_report_data
from reports.feed import ALERTS_FILE, KPIS_FILE
from reports.funnel_plan import Target, default_target, funnel_plan
from reports.model_health import model_health
from serving.settings import Settings

DASHBOARD_FILE = "index.html"
KPI_DAYS = 30

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReportRun:
    out: Path
    reports: dict[str, str]  # report name -> HTML file name
    alerts: list[dict[str, Any]]
    kpis: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """The JSON document of `leadloop report --json`."""
        return {
            "out": str(self.out),
            "dashboard": str(self.out / DASHBOARD_FILE),
            "reports": {name: str(self.out / file) for name, file in self.reports.items()},
            "alerts": self.alerts,
            "kpis": self.kpis,
        }


def _json(value: Any) -> Any:
    """JSON-safe values: timestamps as ISO text, periods as text, NaN as null."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, pd.Period):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return _json(frame.to_dict(orient="records"))


def source_quality_report(data: ReportData, horizon: timedelta) -> tuple[dict, list[Alert]]:
    changes = source_quality.source_changes(data.leads, data.as_of, horizon)
    table = source_quality.monthly(data.leads, data.as_of, horizon)
    alerts = [
        Alert(
            kind="source_stopped_converting",
            subject=c["source"],
            since=c["since"],
            evidence=(
                f"won within {horizon.days} days fell from {c['rate_before']:.1%} to "
                f"{c['rate_after']:.1%} (posterior probability of a change "
                f"{c['probability']:.3f}; start between {c['since_interval'][0]} and "
                f"{c['since_interval'][1]})"
            ),
            report="source_quality.html",
        )
        for c in changes
        if c["dropped"]
    ]
    report = {
        "horizon_days": horizon.total_seconds() / 86400,
        "change_probability": source_quality.CHANGE_PROBABILITY,
        "min_relative_drop": source_quality.MIN_RELATIVE_DROP,
        "changes": changes,
        "monthly": _records(table),
        "predicted_vs_actual": source_quality.predicted_vs_actual(table),
    }
    return report, alerts


def follow_up_report(data: ReportData, sla_hours: float) -> tuple[dict, list[Alert]]:
    handed = follow_up.with_response(data.leads, data.as_of, sla_hours)
    report = {
        "sla_hours": sla_hours,
        "hand_overs": len(handed),
        "breach_rate": float(handed["breached"].mean()) if len(handed) else 0.0,
        "median_hours": float(handed["response_hours"].median()) if len(handed) else None,
        "monthly": _records(follow_up.by_source_and_month(handed)),
        "win_rate_by_response": follow_up.win_rate_by_response(handed),
    }
    return report, follow_up.breach_alerts(handed, data.as_of, sla_hours)


def kpis(data: ReportData, sla_hours: float, days: int = KPI_DAYS) -> dict[str, Any]:
    """The dashboard's shared figures over the last `days` days."""
    start = data.as_of - pd.Timedelta(days=days)
    leads = data.leads
    created = leads[leads["created_at"] > start]
    closed = leads[leads["closed_at"] > start]
    handed = follow_up.with_response(leads[leads["handed_over"] > start], data.as_of, sla_hours)
    hours = handed["response_hours"]
    card = data.champion.scorer.card if data.champion else {}
    return {
        "as_of": data.as_of.isoformat(),
        "days": days,
        "leads": int(len(created)),
        "hand_overs": int(len(handed)),
        "win_rate": float((closed["outcome"] == "won").mean()) if len(closed) else None,
        "disqualification_rate": float((closed["outcome"] == "disqualified").mean())
        if len(closed)
        else None,
        "median_hours_to_contact": float(hours.median()) if hours.notna().any() else None,
        "champion_version": data.champion.version if data.champion else None,
        "champion_auc": card.get("metrics", {}).get("roc_auc"),
    }


def drift_frames(data: ReportData, days: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Reference (the champion's training window, else the 180 days before) and current."""
    since = data.as_of - pd.Timedelta(days=days)
    frame = data.features.assign(
        prediction=data.leads["probability"],
        target=data.leads["outcome"].map({"won": 1, "lost": 0, "disqualified": 0}),
    )
    created = data.leads["created_at"]
    window = (data.champion.scorer.card.get("training_window") if data.champion else None) or {}
    if window:
        start, end = pd.Timestamp(window["start"]), pd.Timestamp(window["end"])
    else:
        start, end = since - pd.Timedelta(days=180), since
    reference = frame[(created >= start) & (created <= end)]
    return reference, frame[created > since], since


def write_reports(
    settings: Settings,
    sessions: sessionmaker[Session],
    out: Path,
    as_of: datetime | None,
    target: Target | None,
    progress: Progress = lambda _: None,
) -> ReportRun:
    """Compute every report, then write them all (the folder holds only this run's files)."""
    schema = load_schema(settings.schema_path)
    progress("Loading the champion")
    champion = _champion(settings)
    progress("Reading leads, outcomes and scores")
    data = read_report_data(sessions, schema, champion, as_of)
    horizon = source_quality.outcome_horizon(data.leads, data.as_of)
    documents: dict[str, dict[str, Any]] = {}
    alerts: dict[str, list[Alert]] = {}

    progress("Source quality and change detection")
    documents["source_quality"], alerts["source_quality"] = source_quality_report(data, horizon)
    progress("Follow-up SLA")
    documents["follow_up"], alerts["follow_up"] = follow_up_report(data, settings.sla_hours)
    progress("Funnel plan")
    dropped = {
        c["source"]: pd.Timestamp(c["since"], tz="UTC")
        for c in documents["source_quality"]["changes"]
        if c["dropped"]
    }
    chosen = target or default_target(data.leads, data.as_of)
    plan = funnel_plan(data.leads, data.as_of, horizon, chosen, settings.sales_capacity, dropped)
    documents["funnel_plan"] = plan | {"default_target": target is None}
    alerts["funnel_plan"] = []
    progress("Model health")
    documents["model_health"], alerts["model_health"] = _health(data, data.champion)
    progress("Drift (Evidently)")
    documents["drift"], alerts["drift"], snapshot = _drift(data, schema, settings.drift_days)

    renderers = {
        "source_quality": pages.source_quality_page,
        "follow_up": pages.follow_up_page,
        "funnel_plan": pages.funnel_plan_page,
        "model_health": pages.model_health_page,
        "drift": pages.drift_placeholder,
    }
    every_alert = [a.to_dict() for group in alerts.values() for a in group]
    figures = _json(kpis(data, settings.sla_hours))
    texts: dict[str, str] = {}
    for name, document in documents.items():
        found = [a.to_dict() for a in alerts[name]]
        document = _json(document | {"as_of": data.as_of.isoformat(), "alerts": found})
        texts[f"{name}.json"] = json.dumps(document, indent=1, allow_nan=False)
        if name != "drift" or snapshot is None:
            texts[f"{name}.html"] = renderers[name](document)
    if snapshot is not None:
        texts["drift.html"] = snapshot.get_html_str(as_iframe=False)
    files = {name: f"{name}.html" for name in documents}
    texts[ALERTS_FILE] = json.dumps(every_alert, indent=1, allow_nan=False)
    texts[KPIS_FILE] = json.dumps(figures, indent=1, allow_nan=False)
    texts[DASHBOARD_FILE] = pages.dashboard_page(figures, files, every_alert)
    progress("Writing the pages")
    replace_folder(out, texts)
    return ReportRun(out=out, reports=files, alerts=every_alert, kpis=figures)


def replace_folder(out: Path, texts: dict[str, str]) -> None:
    """Write every file beside its final name, then move each in place (no reader sees half a
    file), and remove what an earlier run left that this one did not write."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        partial = out / f".{name}.partial"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, out / name)
    for stale in out.iterdir():
        if stale.is_file() and stale.name not in texts and stale.suffix in (".html", ".json"):
            stale.unlink()


def _health(data: ReportData, champion: LoadedScorer | None) -> tuple[dict, list[Alert]]:
    if champion is None:
        note = "no champion that predates the report's date: nothing to judge"
        return {"leads": 0, "grades": [], "note": note}, []
    card = champion.scorer.card
    seen = (card.get("holdout_window") or card["training_window"])["end"]
    health, alerts = model_health(data.leads, pd.Timestamp(seen))
    return health | {"model_version": champion.version}, alerts


def _champion(settings: Settings) -> LoadedScorer | None:
    try:
        return load_alias(
            mlflow_client(settings.mlflow_tracking_uri), settings.model_name, CHAMPION
        )
    except ScorerFormatError:
        return None


def _drift(data: ReportData, schema: LeadSchema, days: int) -> tuple[dict, list[Alert], Any]:
    from reports.drift import drift_report

    reference, current, since = drift_frames(data, days)
    if len(reference) < 50 or len(current) < 50:
        note = (
            f"too few leads to compare: {len(reference)} in the reference window, "
            f"{len(current)} in the last {days} days"
        )
        return {"note": note, "columns": [], "drifted_features": []}, [], None
    if current["prediction"].isna().all() or reference["prediction"].isna().all():
        reference, current = (
            reference.drop(columns="prediction"),
            current.drop(columns="prediction"),
        )
    types = {f.name: f.type for f in schema.model_fields_in_order}
    snapshot, summary, alerts = drift_report(reference, current, types, since)
    return summary, alerts, snapshot
