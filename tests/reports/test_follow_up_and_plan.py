"""Follow-up SLA and funnel plan on hand-made leads whose answers are known."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from reports.follow_up import breach_alerts, win_rate_by_response, with_response
from reports.funnel_plan import RateSinceDrop, Target, funnel_plan, parse_target

T0 = pd.Timestamp("2026-06-01", tz="UTC")


def lead(i: int, source: str, response_hours: float | None, outcome: str | None, amount=None):
    handed = T0 + pd.Timedelta(hours=i)
    contacted = (
        handed + pd.Timedelta(hours=response_hours) if response_hours is not None else pd.NaT
    )
    return {
        "lead_id": f"l{i}",
        "created_at": handed - pd.Timedelta(days=1),
        "source": source,
        "handed_over": handed,
        "contacted": contacted,
        "outcome": outcome,
        "closed_at": handed + pd.Timedelta(days=20) if outcome else pd.NaT,
        "amount": amount,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as the report data has them: times typed as aware UTC, even when all missing."""
    table = pd.DataFrame(rows)
    for column in ("created_at", "handed_over", "contacted", "closed_at"):
        table[column] = pd.to_datetime(table[column], utc=True)
    return table


def test_breaches_count_late_and_missing_contacts() -> None:
    leads = frame([lead(0, "a", 2, "won"), lead(1, "a", 30, "lost"), lead(2, "a", None, None)])
    handed = with_response(leads, T0 + pd.Timedelta(days=3), sla_hours=24)
    assert handed["breached"].tolist() == [False, True, True]
    still_waiting = with_response(leads, T0 + pd.Timedelta(hours=10), sla_hours=24)
    assert still_waiting["breached"].tolist()[2] is False  # not due yet


def test_win_rate_by_response_time() -> None:
    rows = [lead(i, "a", 0.5, "won" if i % 2 else "lost") for i in range(10)]
    rows += [lead(10 + i, "a", 50, "lost") for i in range(5)]
    buckets = {
        b["response"]: b
        for b in win_rate_by_response(with_response(frame(rows), T0 + pd.Timedelta(days=30), 24))
    }
    assert buckets["under 1 hour"] == {
        "response": "under 1 hour",
        "closed_leads": 10,
        "win_rate": 0.5,
    }
    assert buckets["1-3 days"]["win_rate"] == 0.0 and buckets["4-24 hours"]["closed_leads"] == 0


def test_a_slow_source_raises_an_alert_and_a_fast_one_does_not() -> None:
    rows = [lead(i, "slow", 40, None) for i in range(30)] + [
        lead(100 + i, "fast", 1, None) for i in range(30)
    ]
    handed = with_response(frame(rows), T0 + pd.Timedelta(days=10), 24)
    (alert,) = breach_alerts(handed, T0 + pd.Timedelta(days=10), 24)
    assert (alert.kind, alert.subject) == ("sla_breaches", "slow") and "100%" in alert.evidence


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("250000/quarter", Target(250_000, 3)),
        ("80,000/month", Target(80_000, 1)),
        ("1e6/year", Target(1e6, 12)),
        ("300000/6m", Target(300_000, 6)),
    ],
)
def test_targets_parse(text: str, target: Target) -> None:
    assert parse_target(text) == target


def test_a_bad_target_is_refused() -> None:
    with pytest.raises(ValueError, match="AMOUNT/PERIOD"):
        parse_target("lots")


PLAN_AS_OF = T0 + pd.Timedelta(days=100)


def one_source_of_events() -> pd.DataFrame:
    """20 mature leads, 5 won at 10,000, and 30 recent open ones: 25% at 10,000 a deal."""
    old = [
        lead(i, "events", 1, "won" if i < 5 else "lost", 10_000 if i < 5 else None)
        for i in range(20)
    ]
    recent = [
        lead(1000 + i, "events", None, None) | {"created_at": PLAN_AS_OF - pd.Timedelta(days=5)}
        for i in range(30)
    ]
    return frame(old + recent)


def test_plan_divides_the_target_by_revenue_per_lead() -> None:
    leads = one_source_of_events()
    plan = funnel_plan(leads, PLAN_AS_OF, timedelta(days=30), Target(300_000, 3), 50)
    (row,) = plan["sources"]
    assert row["win_rate"] == 0.25 and row["average_deal"] == 10_000
    assert plan["leads_needed"] == pytest.approx(300_000 / 2_500)
    assert plan["leads_per_month"] == pytest.approx(40) and row["pipeline_multiple"] == 4
    assert plan["capacity_used"] == pytest.approx(40 / 50)


def test_a_source_that_stopped_converting_is_planned_at_its_rate_since() -> None:
    # The mature leads still show 25%; the change detection measured 5% on the 300 since.
    since = {"events": RateSinceDrop(0.05, 300)}
    leads = one_source_of_events()
    plan = funnel_plan(leads, PLAN_AS_OF, timedelta(days=30), Target(300_000, 3), 50, since)
    (row,) = plan["sources"]
    assert row["win_rate"] == 0.05 and row["rate_leads"] == 300
    assert plan["leads_needed"] == pytest.approx(300_000 / 500)
