"""Drift: do this month's leads look like the leads the champion learned from? (Evidently)

Reference: leads created in the champion's training window. Current: leads created in the last
`days` days. Evidently picks each feature's test by size (K-S or chi-square on small samples,
Wasserstein or Jensen-Shannon distance on large ones); a feature whose drift test fails raises
an alert on its own, even when Evidently's dataset-level rule (half the columns) stays quiet.
Prediction drift compares the champion's probabilities; target drift the won share of closed
leads (recent outcomes are the fast ones, so target drift is shown, never alerted on).
Evidently is imported here only: it takes seconds, and the API never needs it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.schema import FieldType
from reports.alerts import Alert

#: Reference rows kept (a seeded sample): Evidently's distances need no more to be stable.
MAX_REFERENCE_ROWS = 20_000
MIN_TARGET_ROWS = 30


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    types: dict[str, FieldType],
    since: pd.Timestamp,
) -> tuple[Any, dict[str, Any], list[Alert]]:
    """Evidently snapshot, its per-column summary, and one alert per drifted feature.

    Both frames hold the feature columns of `types`, plus `prediction` and `target` (NaN for
    open leads) when known.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if len(reference) > MAX_REFERENCE_ROWS:
        reference = reference.sample(MAX_REFERENCE_ROWS, random_state=0)
    usable = [c for c in types if reference[c].notna().any() and current[c].notna().any()]
    numeric = [c for c in usable if types[c] is FieldType.NUMERIC]
    categorical = [c for c in usable if types[c] is not FieldType.NUMERIC]
    extra = [c for c in ("prediction", "target") if c in reference and c in current]
    closed = current["target"].notna().sum() if "target" in current else 0
    if closed < MIN_TARGET_ROWS and "target" in extra:
        extra.remove("target")
    as_numbers = numeric + [c for c in extra if c == "prediction"]
    as_labels = categorical + [c for c in extra if c == "target"]
    frames = []
    for frame in (current, reference):
        data = frame[usable + extra].copy()
        for column in as_labels:
            data[column] = [None if pd.isna(v) else str(v) for v in data[column]]
        frames.append(data)
    definition = DataDefinition(numerical_columns=as_numbers, categorical_columns=as_labels)
    metrics: list[Any] = [DataDriftPreset(columns=usable)]
    metrics += [ValueDrift(column=c) for c in extra]
    snapshot = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(frames[0], data_definition=definition),
        Dataset.from_pandas(frames[1], data_definition=definition),
    )
    summary = summarise(snapshot.dict(), usable, len(reference), len(current), since)
    alerts = [
        Alert(
            kind="feature_drift",
            subject=row["column"],
            since=since.date().isoformat(),
            evidence=(
                f"{row['method']} {row['score']:.3f} against threshold {row['threshold']:.3f} "
                f"({summary['current_rows']} recent leads vs {summary['reference_rows']} "
                "from the training window)"
            ),
            report="drift.html",
        )
        for row in summary["columns"]
        if row["drifted"] and row["column"] in usable
    ]
    return snapshot, summary, alerts


def summarise(
    result: dict[str, Any],
    features: list[str],
    reference_rows: int,
    current_rows: int,
    since: pd.Timestamp,
) -> dict[str, Any]:
    """Per-column drift from Evidently's result: method, score, threshold, test status."""
    status = {test["metric_config"]["metric_id"]: test["status"] for test in result["tests"]}
    columns = []
    for metric in result["metrics"]:
        config = metric["config"]
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        columns.append(
            {
                "column": config["column"],
                "method": config.get("method"),
                "threshold": config.get("threshold"),
                "score": float(metric["value"]),
                "drifted": status.get(metric["id"]) == "FAIL",
            }
        )
    drifted = [c["column"] for c in columns if c["drifted"] and c["column"] in features]
    return {
        "current_since": since.isoformat(),
        "reference_rows": reference_rows,
        "current_rows": current_rows,
        "columns": columns,
        "drifted_features": drifted,
        "drifted_share": len(drifted) / len(features) if features else 0.0,
    }
