"""Model health and drift on data built to have (or not have) the problem."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import FieldType
from reports.drift import drift_report
from reports.model_health import model_health

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def closed_leads(n: int, predicted: float, actual: float, grade: str) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    created = T0 + pd.to_timedelta(rng.uniform(0, 200, n), unit="D")
    won = rng.random(n) < actual
    return pd.DataFrame(
        {
            "created_at": created,
            "closed_at": created + pd.Timedelta(days=5),
            "outcome": np.where(won, "won", "lost"),
            "probability": predicted,
            "grade": grade,
        }
    )


def test_a_grade_that_stopped_converting_raises_calibration_drift() -> None:
    leads = pd.concat(
        [closed_leads(2_000, 0.40, 0.40, "A"), closed_leads(2_000, 0.20, 0.08, "B")],
        ignore_index=True,
    )
    summary, alerts = model_health(leads, seen_until=T0 - pd.Timedelta(days=1))
    by_grade = {g["grade"]: g for g in summary["grades"]}
    assert not by_grade["A"]["drifted"] and by_grade["B"]["drifted"]
    (alert,) = alerts
    assert (alert.kind, alert.subject) == ("calibration_drift", "grade B")
    assert summary["leads"] == 4_000


def test_no_lead_after_training_means_nothing_to_judge() -> None:
    summary, alerts = model_health(
        closed_leads(100, 0.2, 0.2, "B"), pd.Timestamp("2030-01-01", tz="UTC")
    )
    assert summary["leads"] == 0 and alerts == []


def test_one_drifted_feature_raises_an_alert_on_its_own() -> None:
    rng = np.random.default_rng(5)

    def frame(n: int, shift: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "page_views": rng.poisson(5 + shift, n).astype(float),
                "source": rng.choice(["a", "b", "c"], n),
                "industry": rng.choice(["x", "y"], n),
                "country": rng.choice(["u", "v"], n),
                "prediction": rng.random(n),
                "target": rng.choice([0.0, 1.0, np.nan], n),
            }
        )

    types = {
        "page_views": FieldType.NUMERIC,
        "source": FieldType.CATEGORICAL,
        "industry": FieldType.CATEGORICAL,
        "country": FieldType.CATEGORICAL,
    }
    since = pd.Timestamp("2026-10-01", tz="UTC")
    _, summary, alerts = drift_report(frame(5_000, 0), frame(1_000, 6), types, since)
    assert summary["drifted_features"] == ["page_views"]
    assert summary["drifted_share"] == 0.25  # below Evidently's dataset rule of one half
    (alert,) = alerts
    assert (alert.kind, alert.subject, alert.since) == ("feature_drift", "page_views", "2026-10-01")
    methods = {c["column"]: c["method"] for c in summary["columns"]}
    assert set(methods) >= set(types) | {"prediction"}
    _, calm, none = drift_report(frame(5_000, 0), frame(1_000, 0), types, since)
    assert calm["drifted_features"] == [] and none == []
