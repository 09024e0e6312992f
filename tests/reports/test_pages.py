"""The report pages, rendered from hand-made report documents (no store, no model)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest

from reports import pages
from tests.reports.test_model_quality import Balanced

AS_OF = "2026-11-02T12:00:00+00:00"
EVIL = "<script>alert(1)</script>"


def alert(subject: str = "paid_search") -> dict[str, Any]:
    return {
        "kind": "source_stopped_converting",
        "subject": subject,
        "since": "2026-04-03",
        "evidence": "won within 68 days fell from 8.9% to 1.7%",
        "report": "source_quality.html",
    }


def change(source: str, named: bool = True, **fields: Any) -> dict[str, Any]:
    """One source's most likely change of a rate, as `reports.rate_change` reports it."""
    return {
        "source": source,
        "signal": "won",
        "direction": "drop",
        "since": "2026-02-01",
        "since_interval": ["2026-01-20", "2026-02-10"],
        "evidence": 8.0 if named else 1.2,
        "threshold": 6.9,
        "rate_before": 0.2,
        "rate_after": 0.05,
        "leads_before": 500,
        "leads_after": 400,
        "events_after": 6,
        "expected_after": 24.5,
        "named": named,
    } | fields


def source_quality(source: str = "webinar", months: int = 2) -> dict[str, Any]:
    monthly = [
        {
            "source": source,
            "month": f"2026-0{m + 1}",
            "leads": 1_250,
            "won": 40,
            "lost": 200,
            "disqualified": 10,
            "closed": 250,
            "win_rate": 0.16,
            "disqualification_rate": 0.04,
            "predicted": 0.15,
            "mature": m == 0,
        }
        for m in range(months)
    ]
    rising = {"signal": "disqualified", "direction": "rise", "label": "disqualification rate"}
    return {
        "as_of": AS_OF,
        "alerts": [alert(source)],
        "horizon_days": 68.5,
        "detection": {
            "false_alarm_rate": 0.001,
            "threshold": 6.9,
            "odds_ratios": {"drop": [0.75, 0.5], "rise": [1.33, 2.0]},
            "relative_to_champion": True,
        },
        "changes": [change(source)],
        "leading_indicators": [change(source, **rising, rate_before=0.04, rate_after=0.09)],
        "monthly": monthly,
        "predicted_vs_actual": [{"source": source, "predicted": 0.15, "win_rate": 0.16}]
        if months
        else [],
    }


def follow_up(hand_overs: int = 1_500, source: str = "webinar") -> dict[str, Any]:
    monthly = [
        {
            "source": source,
            "month": "2026-10",
            "handed_over": hand_overs,
            "contacted": hand_overs,
            "median_hours": 6.5,
            "p90_hours": 30.0,
            "breaches": 150,
            "breach_rate": 0.1,
        }
    ]
    buckets = ["under 1 hour", "1-4 hours", "never contacted"]
    return {
        "as_of": AS_OF,
        "alerts": [],
        "sla_hours": 24.0,
        "hand_overs": hand_overs,
        "breach_rate": 0.1 if hand_overs else 0.0,
        "median_hours": 6.5 if hand_overs else None,
        "monthly": monthly if hand_overs else [],
        "win_rate_by_response": [
            {
                "response": b,
                "closed_leads": 100 if hand_overs else 0,
                "win_rate": 0.2 if hand_overs else None,
            }
            for b in buckets
        ],
    }


def funnel_plan(**row: Any) -> dict[str, Any]:
    source = {
        "source": "webinar",
        "share": 0.5,
        "win_rate": 0.2,
        "rate_leads": 410,
        "average_deal": 12_000.0,
        "revenue_per_lead": 2_400.0,
        "pipeline_multiple": 5.0,
        "leads_per_month": 20.0,
        "hand_overs_per_month": 8.0,
    } | row
    return {
        "as_of": AS_OF,
        "alerts": [],
        "target": "100,000 per quarter",
        "default_target": True,
        "revenue_per_lead": 2_400.0,
        "leads_per_month": 40.0,
        "current_leads_per_month": 35.0,
        "hand_overs_per_month": 16.0,
        "sales_capacity_per_month": None,
        "capacity_used": None,
        "sources": [source],
    }


def model_health(grades: bool = True) -> dict[str, Any]:
    rows = [
        {"grade": "A", "leads": 120, "predicted": 0.4, "actual": 0.3, "drifted": True},
        {"grade": "B", "leads": 300, "predicted": 0.2, "actual": 0.21, "drifted": False},
    ]
    return {
        "as_of": AS_OF,
        "alerts": [],
        "model_version": "3",
        "leads": 420 if grades else 0,
        "seen_until": "2026-07-01T00:00:00+00:00",
        "predicted": 0.26,
        "actual": 0.24,
        "grades": rows if grades else [],
    }


def model_quality(segment: str = "webinar") -> dict[str, Any]:
    metrics = {"roc_auc": 0.81, "ece": 0.03}
    window = {"start": "2025-08-01T00:00:00+00:00", "end": "2026-07-01T00:00:00+00:00"}
    return {
        "model_version": "2",
        "model_kind": "lightgbm",
        "card": {
            "trained_at": "2026-11-02T12:00:00+00:00",
            "training_window": window,
            "holdout_window": window,
            "n_train": 4_232,
            "n_holdout": 1_030,
        },
        "decision": {
            "promoted": True,
            "reason": "it beats the best baseline",
            "comparisons": [
                {
                    "against": "rules",
                    "auc_difference": 0.05,
                    "interval_low": 0.01,
                    "interval_high": 0.09,
                }
            ],
        },
        "metrics": {"model": metrics, "base_rate": {"roc_auc": 0.5, "ece": 0.0}},
        "candidates": {"lightgbm": {"validation_auc": 0.84, "holdout": metrics}},
        "calibration": {"model": [{"predicted": 0.1, "actual": 0.12}]},
        "lift_by_decile": [
            {"decile": d, "min_probability": 1 / d, "win_rate": 0.5 / d, "lift": 3 / d}
            for d in range(1, 11)
        ],
        "grades": {
            "cutoffs": {"a": 0.31, "b": 0.16},
            "holdout": [
                {"grade": "A", "leads": 124, "share": 0.5, "predicted": 0.5, "win_rate": 0.4}
            ],
        },
        "segments": {
            "source": [
                {"value": segment, "leads": 236, "win_rate": 0.1, "predicted": 0.1, "metrics": None}
            ]
        },
        "importance": [{"field": "page_views", "mean_abs_log_odds": 0.39}],
        "leaks": [],
        "time_proxies": [],
        "refit_leads": None,
        "recalibration_leads": None,
    }


def dashboard(alerts: list[dict[str, Any]] | None = None) -> str:
    kpis = {
        "as_of": AS_OF,
        "days": 30,
        "leads": 14_020,
        "hand_overs": 12,
        "closed": 15,
        "win_rate": 0.2667,
        "disqualification_rate": None,
        "median_hours_to_contact": 6.44,
        "champion_auc": None,
    }
    files = {name: f"{name}.html" for name in ("source_quality", "follow_up", "drift")}
    return pages.dashboard_page(kpis, files, alerts or [])


EVERY_PAGE: dict[str, Callable[[], str]] = {
    "source_quality": lambda: pages.source_quality_page(source_quality()),
    "follow_up": lambda: pages.follow_up_page(follow_up()),
    "funnel_plan": lambda: pages.funnel_plan_page(funnel_plan()),
    "model_health": lambda: pages.model_health_page(model_health()),
    "drift": lambda: pages.drift_placeholder_page(
        {"as_of": AS_OF, "note": "too few leads to compare"}
    ),
    "dashboard": lambda: dashboard([alert()]),
    "model_quality": lambda: pages.model_quality_page(model_quality()),
    "no_reports": pages.no_reports_page,
}


class Cells(HTMLParser):
    """The text of each body cell, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def body_rows(html: str) -> list[list[str]]:
    parser = Cells()
    parser.feed(html)
    return [row for row in parser.rows if row]


@pytest.mark.parametrize("name", EVERY_PAGE)
def test_every_page_extends_the_one_base_layout(name: str) -> None:
    html = EVERY_PAGE[name]()
    assert html.startswith("<!doctype html>")
    assert html.count('<html lang="en">') == 1 and html.count("<style>") == 1
    assert html.count('<meta charset="utf-8">') == 1 and html.count("<body>") == 1
    parser = Balanced()
    parser.feed(html)
    assert parser.open == []
    pages_only = [ref.split("#")[0] for ref in parser.external]  # a page, at most an anchor
    assert not [ref for ref in pages_only if not ref.endswith(".html")]  # no asset


@pytest.mark.parametrize(
    "render",
    [
        lambda: pages.source_quality_page(source_quality(EVIL)),
        lambda: pages.follow_up_page(follow_up(source=EVIL)),
        lambda: pages.funnel_plan_page(funnel_plan(source=EVIL)),
        lambda: pages.drift_placeholder_page({"as_of": AS_OF, "note": EVIL}),
        lambda: dashboard([alert(EVIL)]),
        lambda: pages.model_quality_page(model_quality(EVIL)),
    ],
    ids=["source_quality", "follow_up", "funnel_plan", "drift", "dashboard", "model_quality"],
)
def test_text_from_the_data_is_escaped(render: Callable[[], str]) -> None:
    html = render()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html


def test_plots_are_embedded_as_svg_not_escaped() -> None:
    html = pages.follow_up_page(follow_up())
    assert html.count("<svg") == 2 and "&lt;svg" not in html


def test_follow_up_without_hand_overs_says_so_instead_of_plotting() -> None:
    html = pages.follow_up_page(follow_up(hand_overs=0))
    assert "No hand-over to sales is recorded yet." in html
    assert "<svg" not in html and 'class="plots"' not in html


def test_model_health_without_grades_says_so_instead_of_plotting() -> None:
    html = pages.model_health_page(model_health(grades=False))
    assert "No lead created after the champion's holdout window has closed yet." in html
    assert "<svg" not in html and "<table" not in html
    noted = pages.model_health_page(model_health(grades=False) | {"note": "nothing to judge"})
    assert "<p>nothing to judge.</p>" in noted
    assert pages.model_health_page(model_health()).count("<svg") == 1


def test_source_quality_without_leads_says_so_instead_of_plotting() -> None:
    html = pages.source_quality_page(source_quality(months=0))
    assert "No leads before this date." in html and "<svg" not in html
    assert pages.source_quality_page(source_quality()).count("<svg") == 2


def test_funnel_plan_without_won_amounts_makes_no_plan() -> None:
    html = pages.funnel_plan_page(funnel_plan() | {"leads_per_month": None, "sources": []})
    assert "No source has won deals with amounts yet: no plan can be made." in html
    assert "hand-overs a month." not in html


def test_model_quality_without_leaks_says_so() -> None:
    html = pages.model_quality_page(model_quality())
    assert "No field was flagged." in html
    flagged = model_quality() | {
        "leaks": [{"field": "stage", "excluded": False, "accepted_because": "early", "why": "x"}]
    }
    assert ["stage", "kept: early", "x"] in body_rows(pages.model_quality_page(flagged))


def test_model_quality_lists_each_time_proxy_decision_and_the_refit() -> None:
    html = pages.model_quality_page(model_quality())
    assert "No field moved with time enough to be judged." in html
    assert "refit on" not in html
    decision = {"field": "calendar", "model_kind": "lightgbm", "shift_auc": 0.97}
    judged = model_quality() | {
        "time_proxies": [
            decision
            | {"auc_with": 0.80, "auc_without": 0.82, "excluded": True}
            | {"interval_low": 0.01, "interval_high": 0.03},
            decision
            | {"model_kind": "logistic_regression", "auc_with": 0.79, "auc_without": 0.77}
            | {"excluded": False, "interval_low": -0.03, "interval_high": -0.01},
        ],
        "refit_leads": 12_345,
        "recalibration_leads": 0,
    }
    rows = body_rows(pages.model_quality_page(judged))
    excluded = ["calendar", "lightgbm", "excluded", "0.9700", "0.8000", "0.8200"]
    assert [*excluded, "0.0100", "0.0300"] in rows
    kept = ["calendar", "logistic_regression", "kept", "0.9700", "0.7900", "0.7700"]
    assert [*kept, "-0.0300", "-0.0100"] in rows
    text = " ".join(pages.model_quality_page(judged).split())
    assert "refit on 12,345 closed" in text
    assert "too few of the newest leads have settled" in text
    recalibrated = " ".join(pages.model_quality_page(judged | {"recalibration_leads": 678}).split())
    assert "intercept follows the 678 newest leads" in recalibrated


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        (math.nan, "–"),
        (True, "yes"),
        (False, "no"),
        (0.123456, "0.1235"),
        (-9.87654, "-9.8765"),
        (12_345.678, "12,345.7"),
        (-1_234_567.0, "-1,234,567.0"),
        (1_234_567, "1,234,567"),
        (7, "7"),
        ("paid & search", "paid & search"),
    ],
)
def test_table_cells_are_formatted_like_every_report(value: Any, shown: str) -> None:
    row = body_rows(pages.funnel_plan_page(funnel_plan(average_deal=value)))[0]
    assert [row[0], row[3]] == ["webinar", shown]


def test_text_columns_are_left_aligned_and_numbers_right_aligned() -> None:
    html = pages.source_quality_page(source_quality())
    assert '<td class="text">2026-01</td>' in html  # source and month are words
    assert "<td>1,250</td>" in html and "<td>yes</td>" in html


def test_dashboard_figures_are_formatted_and_missing_ones_shown_as_a_dash() -> None:
    html = dashboard()
    for tile in ("<b>14,020</b>leads", "<b>26.7%</b>win rate", "<b>6.4</b>median hours"):
        assert tile in html
    assert "<b>–</b>disqualification rate" in html
    assert re.search(r'<b>–</b><abbr title="[^"]+">champion AUC</abbr>', html)
    assert '<p class="good">No alert.</p>' in html
    assert '<a href="follow_up.html">Follow-up SLA</a>' in html
