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
from matplotlib.figure import Figure


def figure(width: float = 4.6, height: float = 4.2) -> Figure:
    """A figure of `width` x `height` inches."""
    return Figure(figsize=(width, height))


def svg(fig: Figure) -> Markup:
    """The figure as an inline `<svg>` element (matplotlib's own output, safe to embed)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return Markup(text[text.index("<svg") :])


def source_win_rates(report: dict[str, Any]) -> Markup:
    """Source quality: win rate by source and month of creation, detected drops marked."""
    monthly = pd.DataFrame(report["monthly"])
    if monthly.empty:
        return Markup()
    fig = figure(9.5, 4.4)
    axes = fig.subplots()
    dropped = {c["source"]: c for c in report["changes"] if c["dropped"]}
    for source, part in monthly.groupby("source"):
        ripe = part[part["mature"]]
        (line,) = axes.plot(ripe["month"], ripe["win_rate"], marker="o", label=source)
        young = part[~part["mature"]]
        axes.plot(young["month"], young["win_rate"], linestyle=":", color=line.get_color())
        if source in dropped:
            axes.axvline(dropped[source]["since"][:7], color=line.get_color(), linestyle="--")
    axes.set(
        title="Win rate by month of creation (dotted: outcomes still arriving)",
        ylabel="won / closed",
    )
    axes.tick_params(axis="x", rotation=60)
    axes.legend(fontsize=7, ncol=2)
    return svg(fig)


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
    axes.bar([b["response"] for b in buckets], [b["win_rate"] for b in buckets], color="#3b6ea8")
    axes.set(title="Win rate by response time", ylabel="win rate")
    axes.tick_params(axis="x", rotation=30)
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
    return svg(fig)


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
    axes.bar([d["decile"] for d in deciles], [d["lift"] for d in deciles], color="#3b6ea8")
    axes.axhline(1.0, color="#999", linestyle="--", linewidth=1)
    axes.set(
        xlabel="decile (1 = highest scores)",
        ylabel="lift over average win rate",
        title="Lift by decile (holdout)",
        xticks=range(1, 11),
    )
    return svg(fig)
