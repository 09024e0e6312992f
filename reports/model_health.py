"""Model health: is the champion still calibrated on leads it had never seen when promoted?

Leads created after the champion's holdout window (the newest leads it was judged on), now
closed, weighted for censoring like training does (recent leads close fast only when they
lose): the weights are estimated on all closed leads, then taken for these. Per grade: predicted
and actual win rate. A grade with at least `MIN_GRADE_LEADS` leads whose actual rate is off by
more than `ALERT_GAP` and by more than 3 standard errors (of the weighted mean, with Kish's
effective sample size) raises a calibration-drift alert.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.alerts import Alert
from store.outcomes import Outcome
from training.dataset import CREATED_AT, OCCURRED_AT, OUTCOME, censoring_weights

ALERT_GAP = 0.03
MIN_GRADE_LEADS = 50


def model_health(leads: pd.DataFrame, seen_until: pd.Timestamp) -> tuple[dict, list[Alert]]:
    closed = leads[leads["outcome"].notna()]
    all_weights = censoring_weights(
        pd.DataFrame(
            {
                CREATED_AT: closed["created_at"].to_numpy(),
                OCCURRED_AT: closed["closed_at"].to_numpy(),
                OUTCOME: closed["outcome"].to_numpy(),
            }
        )
    )
    unseen = (closed["created_at"] > seen_until).to_numpy()
    after, weights = closed[unseen], all_weights[unseen]
    if after.empty:
        return {"leads": 0, "grades": [], "seen_until": seen_until.isoformat()}, []
    won = (after["outcome"] == Outcome.WON).to_numpy(float)
    rows, alerts = [], []
    for grade in "ABCD":
        mask = (after["grade"] == grade).to_numpy()
        if not mask.any():
            continue
        w = weights[mask]
        predicted = float(np.average(after["probability"].to_numpy()[mask], weights=w))
        actual = float(np.average(won[mask], weights=w))
        effective = w.sum() ** 2 / (w**2).sum()
        error = np.sqrt(max(predicted * (1 - predicted), 1e-6) / effective)
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
                        f"leads graded {grade} since the model's holdout won {actual:.1%}, "
                        f"it predicted {predicted:.1%} ({mask.sum()} closed leads)"
                    ),
                    report="model_health.html",
                )
            )
    summary = {
        "leads": int(len(after)),
        "seen_until": seen_until.isoformat(),
        "predicted": float(np.average(after["probability"], weights=weights)),
        "actual": float(np.average(won, weights=weights)),
        "grades": rows,
    }
    return summary, alerts
