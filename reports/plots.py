"""The reports' plots: each takes a report's JSON document and returns inline SVG markup, or
empty markup when there is nothing to draw.

Drawn with a bare matplotlib `Figure` (no pyplot: no display backend and no global state), so
every page opens offline and references no other file.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from markupsafe import Markup
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.dates import DateFormatter, MonthLocator
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

LINE = "#3b6ea8"
DROP = "#b42318"
WITHHELD = "#888888"


def figure(width: float = 4.6, height: float = 4.2) -> Figure:
    """A figure of `width` x `height` inches."""
    return Figure(figsize=(width, height))


def svg(fig: Figure) -> Markup:
    """The figure as an inline `<svg>` element (matplotlib's own output, safe to embed)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return Markup(text[text.index("<svg") :])


def source_win_rates(report: dict[str, Any]) -> dict[str, Markup]:
    """Source quality: one small chart per source of its win rate by month of creation, all on
    one scale so they compare at a glance (solid: mature months; dotted: months whose outcomes
    are still arriving), its named drop marked from the day it started (in grey when withheld:
    the source's outcomes stopped arriving, so its leads only look unconverted)."""
    monthly = pd.DataFrame(report["monthly"])
    if monthly.empty:
        return {}
    start = pd.PeriodIndex(monthly["month"], freq="M").to_timestamp()
    monthly = monthly.assign(
        middle=start + pd.Timedelta(days=14), win_rate=monthly["win_rate"].astype(float)
    )
    months = (start.min(), start.max() + pd.offsets.MonthEnd(1))
    peak = monthly["win_rate"].max()
    top = 1.15 * (peak if peak > 0.01 else 0.01)
    marked = {c["source"]: c for c in report["changes"] if c["named"] or c.get("withheld")}
    charts = {}
    for source, part in monthly.groupby("source"):
        fig = figure(3.4, 2.3)
        axes = fig.subplots()
        ripe = part[part["mature"]]
        axes.plot(ripe["middle"], ripe["win_rate"], marker="o", markersize=3, color=LINE)
        young = part[~part["mature"]]
        if len(ripe):  # one line: the dotted part goes on from the last mature month
            young = pd.concat([ripe.tail(1), young])
        axes.plot(young["middle"], young["win_rate"], linestyle=":", marker=".", color=LINE)
        if source in marked:
            _mark_change(axes, marked[source], months, top)
        axes.set(xlim=months, ylim=(0, top), ylabel="win rate")
        _as_percent(axes.yaxis)
        axes.xaxis.set_major_locator(MonthLocator(bymonth=(1, 4, 7, 10)))
        axes.xaxis.set_major_formatter(DateFormatter("%b %Y"))
        axes.tick_params(labelsize=7)
        charts[str(source)] = svg(fig)
    return charts


def _mark_change(
    axes: Axes, change: dict[str, Any], months: tuple[pd.Timestamp, pd.Timestamp], top: float
) -> None:
    """A dashed line at the first day of the change, labelled on the side with room."""
    withheld = bool(change.get("withheld"))
    color = WITHHELD if withheld else DROP
    since = pd.Timestamp(change["since"])
    axes.axvline(since, color=color, linestyle="--", linewidth=1.2)
    late = since > months[0] + (months[1] - months[0]) / 2
    axes.annotate(
        "withheld: feed stalled" if withheld else f"changed {change['since']}",
        (since, top),
        xytext=(-3 if late else 3, -3),
        textcoords="offset points",
        ha="right" if late else "left",
        va="top",
        fontsize=7,
        color=color,
    )


def source_predicted_vs_actual(report: dict[str, Any]) -> Markup:
    """Source quality: each source's mean predicted probability against its win rate."""
    points = [p for p in report["predicted_vs_actual"] if p["predicted"] is not None]
    if not points:
        return Markup()
    fig = figure()
    axes = fig.subplots()
    axes.scatter([p["predicted"] for p in points], [p["win_rate"] or 0 for p in points])
    for p in points:
        axes.annotate(p["source"], (p["predicted"], p["win_rate"] or 0), fontsize=7)
    top = max(max(p["predicted"], p["win_rate"] or 0) for p in points) or 1.0
    axes.plot([0, top], [0, top], linestyle="--", color="#999")
    axes.set(
        title="Predicted vs actual (mature months)", xlabel="mean predicted", ylabel="win rate"
    )
    _as_percent(axes.xaxis, axes.yaxis)
    return svg(fig)


def response_hours(report: dict[str, Any]) -> Markup:
    """Follow-up: median hours to first contact by source and month, against the SLA."""
    monthly = pd.DataFrame(report["monthly"])
    if monthly.empty:
        return Markup()
    fig = figure(9.5, 4.0)
    axes = fig.subplots()
    for source, part in monthly.groupby("source"):
        axes.plot(part["month"], part["median_hours"], marker="o", label=source)
    axes.axhline(report["sla_hours"], color="#b42318", linestyle="--", label="SLA")
    axes.set(title="Median hours from hand-over to first contact", ylabel="hours")
    axes.tick_params(axis="x", rotation=60)
    axes.legend(fontsize=7, ncol=2)
    return svg(fig)


def win_rate_by_response(report: dict[str, Any]) -> Markup:
    """Follow-up: win rate of closed leads by response-time bucket."""
    buckets = [b for b in report["win_rate_by_response"] if b["win_rate"] is not None]
    if not buckets:
        return Markup()
    fig = figure()
    axes = fig.subplots()
    axes.bar([b["response"] for b in buckets], [b["win_rate"] for b in buckets], color=LINE)
    axes.set(title="Win rate by response time", ylabel="win rate")
    axes.tick_params(axis="x", rotation=30)
    _as_percent(axes.yaxis)
    return svg(fig)


def grade_calibration(report: dict[str, Any]) -> Markup:
    """Model health: the champion's predicted against actual win rate by grade."""
    grades = report.get("grades")
    if not grades:
        return Markup()
    fig = figure()
    axes = fig.subplots()
    axes.plot([g["predicted"] for g in grades], [g["actual"] for g in grades], marker="o")
    for g in grades:
        axes.annotate(g["grade"], (g["predicted"], g["actual"]))
    top = max(max(g["predicted"], g["actual"]) for g in grades)
    axes.plot([0, top], [0, top], linestyle="--", color="#999")
    axes.set(
        title="Champion: predicted vs actual by grade",
        xlabel="predicted",
        ylabel="actual (censoring-weighted)",
    )
    _as_percent(axes.xaxis, axes.yaxis)
    return svg(fig)


def _as_percent(*axes: Axis) -> None:
    """Rates on these axes read as percentages, like the tables."""
    for axis in axes:
        axis.set_major_formatter(PercentFormatter(1.0))


def holdout_reliability(report: dict[str, Any]) -> Markup:
    """Model quality: reliability curves of the model and its baselines on the holdout."""
    curves = report["calibration"]
    if not any(curves.values()):
        return Markup()
    fig = figure()
    axes = fig.subplots()
    top = max(max(b["predicted"], b["actual"]) for curve in curves.values() for b in curve)
    axes.plot([0, top], [0, top], color="#999", linestyle="--", linewidth=1, label="perfect")
    for name, curve in curves.items():
        axes.plot(
            [b["predicted"] for b in curve], [b["actual"] for b in curve], marker="o", label=name
        )
    axes.set(xlabel="predicted win rate", ylabel="actual win rate", title="Reliability (holdout)")
    axes.legend(fontsize=8)
    return svg(fig)


def holdout_lift(report: dict[str, Any]) -> Markup:
    """Model quality: lift over the average win rate by score decile on the holdout."""
    deciles = report["lift_by_decile"]
    if not deciles:
        return Markup()
    fig = figure()
    axes = fig.subplots()
    axes.bar([d["decile"] for d in deciles], [d["lift"] for d in deciles], color=LINE)
    axes.axhline(1.0, color="#999", linestyle="--", linewidth=1)
    axes.set(
        xlabel="decile (1 = highest scores)",
        ylabel="lift over average win rate",
        title="Lift by decile (holdout)",
        xticks=range(1, 11),
    )
    return svg(fig)
