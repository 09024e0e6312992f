"""The HTML pages of the reports: each lays out one report's JSON document with a Jinja2
template in `reports/templates/` (no numbers are computed here). A report with nothing to show
says so instead of drawing empty plots.
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from reports import plots


def source_quality_page(report: dict[str, Any]) -> str:
    """The source-quality page: detected changes, win rates by source and month."""
    return _render(
        "source_quality.html",
        report=report,
        win_rates=plots.source_win_rates(report),
        predicted_vs_actual=plots.source_predicted_vs_actual(report),
    )


def follow_up_page(report: dict[str, Any]) -> str:
    """The follow-up SLA page: response times to hand-overs and their win rates."""
    return _render(
        "follow_up.html",
        report=report,
        response_hours=plots.response_hours(report),
        win_rate_by_response=plots.win_rate_by_response(report),
    )


def funnel_plan_page(report: dict[str, Any]) -> str:
    """The funnel-plan page: the leads and hand-overs a month each source must bring."""
    return _render("funnel_plan.html", report=report)


def model_health_page(report: dict[str, Any]) -> str:
    """The model-health page: the champion's calibration on leads it never saw."""
    return _render("model_health.html", report=report, plot=plots.grade_calibration(report))


def drift_placeholder_page(report: dict[str, Any]) -> str:
    """The drift page when there is not enough to compare (Evidently renders the real one)."""
    return _render("drift.html", report=report)


def dashboard_page(kpis: dict[str, Any], reports: dict[str, str], alerts: list[dict]) -> str:
    """The dashboard: key figures, every alert, a link to each report (name -> file)."""
    return _render("dashboard.html", kpis=kpis, reports=reports, alerts=alerts)


def model_quality_page(report: dict[str, Any]) -> str:
    """The model-quality page logged with a training run (`training.evaluation.quality_report`)."""
    return _render(
        "model_quality.html",
        report=report,
        reliability=plots.holdout_reliability(report),
        lift=plots.holdout_lift(report),
    )


def _render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


@functools.cache
def _environment() -> Environment:
    """The templates' environment, built on first use (nothing happens at import time)."""
    environment = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["cell"] = _cell
    environment.filters["number"] = _number
    environment.filters["pick"] = _pick
    return environment


def _cell(value: Any) -> str:
    """A table cell: "–" for a missing value, yes/no, 4 decimals below 10, separators above."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _number(value: float | None, spec: str) -> str:
    """`value` in the format-spec mini-language (`{{ rate|number(".1%") }}`), "–" if missing."""
    return "–" if value is None else format(value, spec)


def _pick(mapping: dict[str, Any] | None, keys: list[str]) -> list[Any]:
    """The values of `keys` in `mapping`, None where one is missing."""
    return [(mapping or {}).get(key) for key in keys]
