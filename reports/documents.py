"""Each report's JSON document and its alerts, from what the store held at the report's date.

Pure functions of `ReportData` (Evidently's drift run included: it reads frames, writes
nothing); `reports.service` reads the store before and writes the files after.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.schema import LeadSchema
from reports import follow_up, outcome_feed, rate_change, source_quality, source_signals
from reports.alerts import Alert
from reports.data import ReportData
from reports.funnel_plan import RateSinceDrop, Target, default_target, funnel_plan
from reports.model_health import model_health
from store.outcomes import Outcome, won_label

KPI_DAYS = 30
#: Without a champion, drift compares the last days with the half-year before them.
REFERENCE_DAYS = 180
#: Fewer leads than this on either side of a drift comparison say nothing.
MIN_DRIFT_LEADS = 50

Document = dict[str, Any]


def json_safe(value: Any) -> Any:
    """JSON-safe values: timestamps as ISO text, periods as text, NaN as null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
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
    return json_safe(frame.to_dict(orient="records"))


def source_quality_report(
    data: ReportData, horizon: timedelta, false_alarm_rate: float = rate_change.ALPHA
) -> tuple[Document, list[Alert]]:
    """Win rates by source and month, each source's most likely drop of its win rate (named
    when chance alone would show one as clear at most `false_alarm_rate` of the time: a
    `source_stopped_converting` alert), and the leading indicators' changes beside them,
    without alerts."""

    def changes_of(signal: source_signals.Signal) -> list[dict[str, Any]]:
        found = source_signals.source_changes(data.leads, data.as_of, signal, false_alarm_rate)
        return [c.to_dict() | {"label": signal.label} for c in found]

    changes = changes_of(source_signals.WIN_RATE)
    leading = [c for signal in source_signals.LEADING_INDICATORS for c in changes_of(signal)]
    table = source_quality.monthly(data.leads, data.as_of, horizon)
    alerts = [
        Alert(
            kind="source_stopped_converting",
            subject=c["source"],
            since=c["since"],
            evidence=_drop_evidence(c),
            report="source_quality.html",
        )
        for c in changes
        if c["named"]
    ]
    report = {
        "horizon_days": horizon.total_seconds() / 86400,
        "detection": {
            "false_alarm_rate": false_alarm_rate,
            "threshold": math.log(1 / false_alarm_rate),
            "odds_ratios": rate_change.ODDS_RATIOS,
            "relative_to_champion": data.champion is not None,
        },
        "changes": changes,
        "leading_indicators": leading,
        "monthly": _records(table),
        "predicted_vs_actual": source_quality.predicted_vs_actual(table),
    }
    return report, alerts


def _drop_evidence(change: dict[str, Any]) -> str:
    """The alert's evidence in a marketer's words."""
    low, high = change["since_interval"]
    odds = math.exp(min(change["evidence"], 50.0))
    rarely = (
        "fewer than 1 report in a million" if odds >= 1e6 else f"at most 1 report in {odds:,.0f}"
    )
    return (
        f"{change['events_after']:,} won and {change['ended_otherwise_after']:,} lost or "
        f"disqualified so far of the {change['leads_after']:,} leads created since "
        f"{change['since']}, where {change['expected_after']:.1f} wins were expected by now at "
        f"the rate before; eventual win rate about {change['rate_before']:.1%} before, "
        f"{change['rate_after']:.1%} since. Chance alone shows a stable source a drop this clear "
        f"in {rarely} (a source is named from 1 in "
        f"{math.exp(change['threshold']):,.0f}); it started between {low} and {high}"
    )


def with_feed_health(
    found: tuple[Document, list[Alert]], data: ReportData
) -> tuple[Document, list[Alert]]:
    """The source-quality report with the outcome feed's health: an `outcome_feed_stalled`
    alert for each feed silent for longer than usual, and, for a source whose own outcomes
    stopped arriving, its drop withheld (its leads look unconverted for want of news) from the
    alerts, the change table and the funnel plan that reads it. A silence of every source
    needs no such care: the reports are dated by the last outcome."""
    report, alerts = found
    until = data.activity_until if data.activity_until is not None else data.as_of
    stalls = outcome_feed.stalled_feeds(data.feed, data.leads, until)
    silent = {s.subject for s in stalls}
    stopped = "source_stopped_converting"
    kept = [a for a in alerts if not (a.kind == stopped and a.subject in silent)]
    changes = [_withheld(c, c["source"] in silent, "its outcomes") for c in report["changes"]]
    # Hand-overs and contacts stopping for every source (a CRM that stopped posting them)
    # withhold every source's change of them; one source's stopping is what its rate falling to
    # nothing looks like, unless its outcomes stopped too. They are read up to the report's
    # date, as the leads' events are.
    lifecycle = {
        event: outcome_feed.ALL_SOURCES in _silent_lifecycle(data, event)
        for event in (Outcome.HANDED_OVER, Outcome.CONTACTED)
    }
    leading = [
        _withheld(c, lifecycle[c["signal"]], "these events")
        if c["signal"] in lifecycle and lifecycle[c["signal"]]
        else _withheld(c, c["source"] in silent, "its outcomes")
        for c in report["leading_indicators"]
    ]
    stalled = [
        Alert(
            kind="outcome_feed_stalled",
            subject=s.subject,
            since=s.last_outcome.date().isoformat(),
            evidence=(
                f"no outcome for {s.silent_days:.0f} days after {s.last_outcome:%Y-%m-%d}, "
                f"while its pace ({s.outcomes_in_window} won, lost or disqualified in the "
                f"{outcome_feed.WINDOW.days} days before) makes a silence of more than "
                f"{s.usual_days:.1f} days unlikely: is the CRM still posting outcomes? Win "
                "rates are not judged past the last outcome"
            ),
            report="source_quality.html",
        )
        for s in stalls
    ]
    feed = {
        "last_outcome": data.feed["occurred_at"].max() if len(data.feed) else None,
        "activity_until": until,
        "stalled": [s.subject for s in stalls],
        "lifecycle_stalled": [event for event, stopped in lifecycle.items() if stopped],
    }
    document = report | {"changes": changes, "leading_indicators": leading, "outcome_feed": feed}
    return document, stalled + kept


def _withheld(change: dict[str, Any], silent: bool, what: str) -> dict[str, Any]:
    """A named change whose news stopped (`silent`): withheld."""
    if not change["named"] or not silent:
        return change
    return change | {"named": False, "withheld": f"{what} stopped arriving"}


def _silent_lifecycle(data: ReportData, event: str) -> set[str]:
    """The sources (or all sources) whose `event` (first hand-overs, first contacts) stopped
    arriving: a CRM that stops posting them makes every source's young leads look stuck."""
    times = data.leads[event]
    feed = pd.DataFrame({"occurred_at": times, "source": data.leads["source"]}).dropna()
    # A lead without the event yet may still have it: it keeps its source's feed judged.
    waiting = pd.DataFrame({"source": data.leads["source"], "outcome": times})
    return {s.subject for s in outcome_feed.stalled_feeds(feed, waiting, data.as_of)}


def follow_up_report(data: ReportData, sla_hours: float) -> tuple[Document, list[Alert]]:
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


def funnel_plan_report(
    data: ReportData,
    horizon: timedelta,
    target: Target | None,
    sales_capacity: int | None,
    changes: list[dict[str, Any]],
) -> tuple[Document, list[Alert]]:
    """The plan for `target` (default: last quarter + 20%), sources that stopped converting
    counted at their rate since the change."""
    dropped = {
        c["source"]: RateSinceDrop(c["rate_after"], c["leads_after"]) for c in changes if c["named"]
    }
    chosen = target or default_target(data.leads, data.as_of)
    plan = funnel_plan(data.leads, data.as_of, horizon, chosen, sales_capacity, dropped)
    return plan | {"default_target": target is None}, []


def model_health_report(data: ReportData) -> tuple[Document, list[Alert]]:
    if data.champion is None:
        note = data.no_champion_because or "no champion: nothing to judge"
        return {"leads": 0, "grades": [], "note": note}, []
    health, alerts = model_health(data.leads, pd.Timestamp(data.champion.card.seen_until))
    return health | {"model_version": data.champion.version}, alerts


def kpis(data: ReportData, sla_hours: float, days: int = KPI_DAYS) -> Document:
    """The dashboard's shared figures over the last `days` days."""
    start = data.as_of - pd.Timedelta(days=days)
    leads = data.leads
    created = leads[leads["created_at"] > start]
    closed = leads[leads["closed_at"] > start]
    handed = follow_up.with_response(leads[leads["handed_over"] > start], data.as_of, sla_hours)
    hours = handed["response_hours"]
    champion = data.champion
    return {
        "as_of": data.as_of.isoformat(),
        # The date asked for, when later than the last outcome (the reports are dated by it).
        "asked_as_of": data.asked_as_of.isoformat() if data.asked_as_of is not None else None,
        "days": days,
        "leads": int(len(created)),
        "hand_overs": int(len(handed)),
        "closed": int(len(closed)),  # what the two rates below are out of
        "win_rate": float((closed["outcome"] == Outcome.WON).mean()) if len(closed) else None,
        "disqualification_rate": float((closed["outcome"] == Outcome.DISQUALIFIED).mean())
        if len(closed)
        else None,
        "median_hours_to_contact": float(hours.median()) if hours.notna().any() else None,
        "champion_version": champion.version if champion else None,
        "champion_auc": champion.card.metrics.get("roc_auc") if champion else None,
    }


def drift_frames(data: ReportData, days: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Reference (the champion's training window, else the 180 days before) and current."""
    since = data.as_of - pd.Timedelta(days=days)
    frame = data.features.assign(
        prediction=data.leads["probability"], target=won_label(data.leads["outcome"])
    )
    created = data.leads["created_at"]
    if data.champion is not None:
        window = data.champion.card.training_window
        start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    else:
        start, end = since - pd.Timedelta(days=REFERENCE_DAYS), since
    reference = frame[(created >= start) & (created <= end)]
    return reference, frame[created > since], since


def drift_report(
    data: ReportData, schema: LeadSchema, days: int
) -> tuple[Document, list[Alert], Any]:
    """Evidently's drift of every model field, with its snapshot for the page (None when there
    are too few leads to compare)."""
    from reports.drift import drift_report as evidently_drift

    reference, current, since = drift_frames(data, days)
    if len(reference) < MIN_DRIFT_LEADS or len(current) < MIN_DRIFT_LEADS:
        note = (
            f"too few leads to compare: {len(reference)} in the reference window, "
            f"{len(current)} in the last {days} days"
        )
        return {"note": note, "columns": [], "drifted_features": []}, [], None
    if current["prediction"].isna().all() or reference["prediction"].isna().all():
        reference = reference.drop(columns="prediction")
        current = current.drop(columns="prediction")
    types = {f.name: f.type for f in schema.model_fields_in_order}
    snapshot, summary, alerts = evidently_drift(reference, current, types, since)
    return summary, alerts, snapshot
