"""`make bench-reports`: how well and how fast the source-quality report finds a collapse.

On the demo funnel's story (`paid_search` stops converting on 2026-04-01), over 20 seeds:
- at the funnel's end, is the collapsing source named, how far off is the date, and does any
  stable source raise an alert;
- re-running the report as of 30, 40, ... days after the change: how soon is it named (the
  detection delay), and does a stable source raise an alert at any of those times;
then how long `leadloop report` takes on 20,000 and 200,000 leads (store, champion, Evidently).
Writes `reports/bench/reports.md`.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchmarks.common import KEY, NOW, TABLES, machine, scratch_store, write_table
from features.schema import DEMO_SCHEMA_PATH, load_schema
from models.registry import mlflow_client
from reports.data import build_report_data
from reports.service import write_reports
from reports.source_quality import outcome_horizon, source_changes
from store.demo_funnel import (
    COLLAPSE_AT,
    COLLAPSING_SOURCE,
    END,
    DemoFunnel,
    generate_demo_funnel,
    load_demo_funnel,
)
from store.repository import ReportFrames
from training.service import train_and_register
from training.tracking import TrackingTarget

SEEDS = range(20)
SWEEP_DAYS = range(30, 221, 10)
TIMING_SIZES = (20_000, 200_000)


def _frames(funnel: DemoFunnel) -> ReportFrames:
    """The funnel as the store would return it (no PII: attributes are not needed here)."""
    leads = funnel.leads[["lead_id", "created_at", "source", "lead_type"]].assign(attributes=None)
    events = pd.concat([funnel.outcomes, funnel.lifecycle], ignore_index=True)
    events = events[["lead_id", "event_id", "outcome", "occurred_at", "amount"]].assign(
        crm_sequence=None
    )
    snapshots = pd.DataFrame(columns=["lead_id", "scored_at", "features"])
    return ReportFrames(leads, events, snapshots)


def _dropped(frames: ReportFrames, as_of: pd.Timestamp) -> list[dict]:
    schema = load_schema(DEMO_SCHEMA_PATH)
    data = build_report_data(schema, None, as_of, frames)
    changes = source_changes(data.leads, as_of, outcome_horizon(data.leads, as_of))
    return [c for c in changes if c["dropped"]]


def detection(seed: int) -> dict:
    frames = _frames(generate_demo_funnel(seed=seed))
    change_day = pd.Timestamp(COLLAPSE_AT.date(), tz="UTC")
    at_end = _dropped(frames, pd.Timestamp(END))
    named = [c for c in at_end if c["source"] == COLLAPSING_SOURCE]
    first_named, false_in_sweep = None, False
    for days in SWEEP_DAYS:
        found = _dropped(frames, pd.Timestamp(COLLAPSE_AT) + pd.Timedelta(days=days))
        false_in_sweep |= any(c["source"] != COLLAPSING_SOURCE for c in found)
        if first_named is None and any(c["source"] == COLLAPSING_SOURCE for c in found):
            first_named = days
    return {
        "seed": seed,
        "named": bool(named),
        "date_error_days": (pd.Timestamp(named[0]["since"], tz="UTC") - change_day).days
        if named
        else None,
        "false_alarms": [c["source"] for c in at_end if c["source"] != COLLAPSING_SOURCE],
        "first_named_after_days": first_named,
        "false_alarm_in_sweep": false_in_sweep,
    }


def timing(n_leads: int) -> dict:
    """Seconds of `write_reports` on a store of `n_leads` demo leads with a champion."""
    schema = load_schema(DEMO_SCHEMA_PATH)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        client = mlflow_client(f"sqlite:///{directory}/mlflow.db")
        target = TrackingTarget("lead-scoring", "bench", (directory / "artifacts").as_uri())
        sessions = scratch_store(directory)
        with sessions.begin() as session:
            load_demo_funnel(session, generate_demo_funnel(n_leads, seed=0), schema, KEY, NOW)
        started = time.perf_counter()
        train_and_register(sessions, client, schema, target, NOW)
        trained = time.perf_counter() - started
        started = time.perf_counter()
        run = write_reports(
            sessions, client, target.model_name, schema, directory / "out", None, None
        )
        seconds = time.perf_counter() - started
        sessions.kw["bind"].dispose()
    return {
        "leads": n_leads,
        "report_seconds": seconds,
        "train_seconds": trained,
        "alerts": len(run.alerts),
    }


def main() -> None:
    started = time.perf_counter()
    results = [detection(seed) for seed in SEEDS]
    timings = [timing(n) for n in TIMING_SIZES]
    named = sum(r["named"] for r in results)
    clean_end = sum(not r["false_alarms"] for r in results)
    clean_sweep = sum(not r["false_alarm_in_sweep"] for r in results)
    errors = [abs(r["date_error_days"]) for r in results if r["named"]]
    delays = [r["first_named_after_days"] for r in results if r["first_named_after_days"]]
    rows = [
        f"| {r['seed']} | {'yes' if r['named'] else 'no'} "
        f"| {'–' if r['date_error_days'] is None else format(r['date_error_days'], '+d')} "
        f"| {r['first_named_after_days'] or 'never'} | {', '.join(r['false_alarms']) or 'none'} "
        f"| {'yes' if r['false_alarm_in_sweep'] else 'no'} |"
        for r in results
    ]
    errors = errors or [0]
    delays = delays or [0]
    text = [
        "# Report detection benchmark",
        "",
        f"Written by `make bench-reports` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in "
        f"{time.perf_counter() - started:.0f} s. Machine: {machine()}.",
        "",
        f"The demo funnel's story: `{COLLAPSING_SOURCE}` stops converting on "
        f"{COLLAPSE_AT:%Y-%m-%d}; the seven other sources are stable. {len(SEEDS)} seeds of "
        "24,000 leads each; the source-quality report's change detection as documented in "
        "`reports/source_quality.py` (posterior probability >= 0.99 and a drop of >= 25%).",
        "",
        "## Summary",
        "",
        f"- Collapsing source named at the funnel's end: **{named} of {len(SEEDS)} seeds**.",
        f"- Start date found within **{max(errors)} days** of the true one (median "
        f"{statistics.median(errors):.0f}).",
        f"- No alert on a stable source at the funnel's end: **{clean_end} of {len(SEEDS)} "
        f"seeds**; at every report date of the sweep below: {clean_sweep} of {len(SEEDS)}.",
        f"- Detection delay (report re-run as of 30, 40, ... 220 days after the change): named "
        f"from **{max(delays)} days** after the change at the latest (median "
        f"{statistics.median(delays):.0f}, earliest {min(delays)}). A lead only counts once it "
        "is old enough to have closed (the outcome horizon, about two months here), and a month or "
        "two of such leads is needed after the change; naming a drop sooner would need a model "
        "of outcomes still arriving (not built).",
        "",
        "| seed | named | date error (days) | named from (days after) | false alarms at end "
        "| false alarm in sweep |",
        "| ---: | --- | ---: | ---: | --- | --- |",
        *rows,
        "",
        "## Time of `leadloop report`",
        "",
        "Everything `make report` does, on a SQLite store of demo leads with a trained champion: "
        "read the store, score every lead with the champion, every report, Evidently drift, "
        "pages.",
        "",
        "| leads | report (s) | for scale: training (s) | alerts |",
        "| ---: | ---: | ---: | ---: |",
        *[
            f"| {t['leads']:,} | {t['report_seconds']:.1f} | {t['train_seconds']:.1f} "
            f"| {t['alerts']} |"
            for t in timings
        ],
        "",
    ]
    write_table(TABLES / "reports.md", text)


if __name__ == "__main__":
    main()
