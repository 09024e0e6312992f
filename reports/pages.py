"""The HTML pages of the reports: each lays out one report's JSON document with a Jinja2
template in `reports/templates/` (the numbers come computed: the filters here only format
them). A report with nothing to show says so instead of drawing empty plots.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from reports import plots


def source_quality_page(report: dict[str, Any]) -> str:
    """The source-quality page: detected changes, a small chart of each source's win rate by
    month, the table behind them."""
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


#: Where Evidently's page ends its head and opens its body. The last one: what comes before,
#: in the head, includes the leads' own values (anyone's text), after it only Evidently's code.
_EVIDENTLY_BODY = re.compile(r"</head>\s*<body[^>]*>", re.IGNORECASE)


def evidently_drift_page(evidently_html: str, report: dict[str, Any]) -> str:
    """Evidently's drift page (a whole page of its own) with the reports' header above its
    dashboard: the navigation back, the drift in plain words, and the alerts that link here.

    Raises:
        ValueError: the page has no head followed by a body (another Evidently version's).
    """
    found = list(_EVIDENTLY_BODY.finditer(evidently_html))
    if not found:
        raise ValueError("Evidently's drift page has no </head> followed by <body>")
    head_end, body_start = found[-1].start(), found[-1].end()
    style = f"<style>\n{_render('_style.css')}\n</style>\n"
    header = _render("drift_header.html", report=report)
    return (
        evidently_html[:head_end]
        + style
        + evidently_html[head_end:body_start]
        + header
        + evidently_html[body_start:]
    )


def dashboard_page(kpis: dict[str, Any], reports: dict[str, str], alerts: list[dict]) -> str:
    """The dashboard: key figures, every alert, a link to each report (name -> file)."""
    return _render("dashboard.html", kpis=kpis, reports=reports, alerts=alerts)


def no_reports_page() -> str:
    """What /reports/ shows before the first `leadloop report`: how to make them."""
    return _render("no_reports.html")


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
    environment.filters["percent"] = _percent
    environment.filters["one_in"] = _one_in
    environment.filters["by_chance"] = _by_chance
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


def _percent(value: float | None, n: int | None = None) -> str:
    """A rate or probability as a percentage with one decimal ("12.3%"), with the count it is
    a share of when given ("12.3% (of 410)": the column says of what); "–" if missing."""
    if value is None or value != value:
        return "–"
    return f"{value:.1%}" if n is None else f"{value:.1%} (of {n:,})"


def _one_in(probability: float) -> str:
    """A small probability as odds a marketer reads: 0.001 -> "1 in 1,000"."""
    return f"1 in {1 / probability:,.0f}"


#: Beyond these odds the number says nothing more.
_MILLION = math.log(1e6)


def _by_chance(evidence: float) -> str:
    """A change's evidence (the log of its likelihood ratio) as how rarely chance alone gives
    as much: at most 1 in exp(evidence) reports (`reports.rate_change`: Ville's inequality)."""
    if evidence < math.log(2):
        return "often"
    if evidence >= _MILLION:
        return "under 1 in a million"
    return _one_in(math.exp(-evidence))


def _pick(mapping: dict[str, Any] | None, keys: list[str]) -> list[Any]:
    """The values of `keys` in `mapping`, None where one is missing."""
    return [(mapping or {}).get(key) for key in keys]
