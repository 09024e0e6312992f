"""Render a training run's model-quality report as one self-contained HTML page.

The numbers come from `training.evaluation.quality_report`; this module only lays them out.
Plots are inline SVG (matplotlib), so the page needs no other file and no network.
"""

from __future__ import annotations

from html import escape
from typing import Any

from reports.render import figure, page, svg, table


def calibration_plot(curves: dict[str, list[dict[str, float]]]) -> str:
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


def lift_plot(deciles: list[dict[str, Any]]) -> str:
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


def render_html(report: dict[str, Any]) -> str:
    """The report as a standalone HTML page."""
    card, decision = report["card"], report["decision"]
    verdict = (
        '<span class="good">promoted to champion</span>'
        if decision["promoted"]
        else '<span class="bad">not promoted</span>'
    )
    metrics = report["metrics"]
    names = list(next(iter(metrics.values())))
    sections = [
        f"<h1>Model quality: version {escape(report['model_version'])} "
        f"({escape(report['model_kind'])})</h1>",
        f"<p>{verdict}: {escape(decision['reason'])}.</p>",
        f"<p class='note'>Trained {escape(card['trained_at'][:19])} on {card['n_train']:,} leads "
        f"({escape(card['training_window']['start'][:10])} to "
        f"{escape(card['training_window']['end'][:10])}); holdout: the newest "
        f"{card['n_holdout']:,} leads ({escape(card['holdout_window']['start'][:10])} to "
        f"{escape(card['holdout_window']['end'][:10])}), weighted for censoring.</p>",
        "<h2>Model, baselines and champion on the holdout</h2>",
        table(["model", *names], ([n, *(m[k] for k in names)] for n, m in metrics.items())),
        table(
            ["comparison", "AUC difference", "95% low", "95% high"],
            (
                [f"vs {c['against']}", c["auc_difference"], c["interval_low"], c["interval_high"]]
                for c in decision["comparisons"]
            ),
        ),
        "<h2>Candidates</h2>",
        table(
            ["candidate", "validation AUC", "holdout AUC", "holdout ECE"],
            (
                [n, c["validation_auc"], c["holdout"]["roc_auc"], c["holdout"]["ece"]]
                for n, c in report["candidates"].items()
            ),
        ),
        "<h2>Calibration and lift</h2>",
        "<div class='plots'>"
        + calibration_plot(report["calibration"])
        + lift_plot(report["lift_by_decile"])
        + "</div>",
        table(
            ["decile", "lowest probability", "win rate", "lift"],
            (
                [d["decile"], d["min_probability"], d["win_rate"], d["lift"]]
                for d in report["lift_by_decile"]
            ),
        ),
        "<h2>Grades</h2>",
        "<p class='note'>Absolute cut-offs: "
        + ", ".join(f"{g.upper()} from {p:.3f}" for g, p in report["grades"]["cutoffs"].items())
        + ".</p>",
        table(
            ["grade", "leads", "share", "predicted", "actual win rate"],
            (
                [g["grade"], g["leads"], g["share"], g["predicted"], g["win_rate"]]
                for g in report["grades"]["holdout"]
            ),
        ),
    ]
    for field, rows in report["segments"].items():
        sections += [
            f"<h2>By {escape(field)}</h2>",
            table(
                ["value", "leads", "actual win rate", "predicted", *names],
                (
                    [r["value"], r["leads"], r["win_rate"], r["predicted"]]
                    + [(r["metrics"] or {}).get(name) for name in names]
                    for r in rows
                ),
            ),
        ]
    sections += [
        "<h2>Field importance</h2>",
        "<p class='note'>Mean absolute contribution to the log-odds over the holdout.</p>",
        table(
            ["field", "mean |contribution|"],
            ([r["field"], r["mean_abs_log_odds"]] for r in report["importance"]),
        ),
        "<h2>Leakage guard</h2>",
        table(
            ["field", "excluded", "why"],
            (
                [
                    x["field"],
                    "yes" if x["excluded"] else "kept: " + str(x["accepted_because"]),
                    x["why"],
                ]
                for x in report["leaks"]
            ),
        )
        if report["leaks"]
        else "<p>No field was flagged.</p>",
    ]
    return page(f"leadloop model quality v{report['model_version']}", sections)
