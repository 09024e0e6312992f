"""Model health: is the champion still calibrated on leads that closed after it was trained?

Leads created after the champion's training window, now closed, weighted for censoring like
training does (recent leads close fast only when they lose). Per grade: predicted and actual
win rate. A grade with at least `MIN_GRADE_LEADS` leads whose actual rate is off by more than
`ALERT_GAP` and by more than 3 standard errors raises a calibration-drift alert.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.alerts import Alert
from training.dataset import CREATED_AT, OCCURRED_AT, OUTCOME, censoring_weights

ALERT_GAP = 0.03
MIN_GRADE_LEADS = 50


def model_health(leads: pd.DataFrame, trained_until: pd.Timestamp) -> tuple[dict, list[Alert]]:
    after = leads[(leads["created_at"] > trained_until) & leads["outcome"].notna()]
    if after.empty:
        return {"leads": 0, "grades": [], "trained_until": trained_until.isoformat()}, []
    weights = censoring_weights(
        pd.DataFrame(
            {
                CREATED_AT: after["created_at"].to_numpy(),
                OCCURRED_AT: after["closed_at"].to_numpy(),
                OUTCOME: after["outcome"].to_numpy(),
            }
        )
    )
    won = (after["outcome"] == "won").to_numpy(float)
    rows, alerts = [], []
    for grade in "ABCD":
        mask = (after["grade"] == grade).to_numpy()
        if not mask.any():
            continue
        w = weights[mask]
        predicted = float(np.average(after["probability"].to_numpy()[mask], weights=w))
        actual = float(np.average(won[mask], weights=w))
        error = np.sqrt(max(predicted * (1 - predicted), 1e-6) / mask.sum())
        drifted = (
            mask.sum() >= MIN_GRADE_LEADS
            and abs(actual - predicted) > ALERT_GAP
            and abs(actual - predicted) > 3 * error
        )
        rows.append(
            {
                "grade": grade,
                "leads": int(mask.sum()),
                "predicted": predicted,
                "actual": actual,
                "drifted": bool(drifted),
            }
        )
        if drifted:
            first = after.loc[mask, "created_at"].min()
            alerts.append(
                Alert(
                    kind="calibration_drift",
                    subject=f"grade {grade}",
                    since=first.date().isoformat(),
                    evidence=(
                        f"leads graded {grade} since the model's training won {actual:.1%}, "
                        f"it predicted {predicted:.1%} ({mask.sum()} closed leads)"
                    ),
                    report="model_health.html",
                )
            )
    summary = {
        "leads": int(len(after)),
        "trained_until": trained_until.isoformat(),
        "predicted": float(np.average(after["probability"], weights=weights)),
        "actual": float(np.average(won, weights=weights)),
        "grades": rows,
    }
    return summary, alerts
