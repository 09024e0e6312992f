"""The HTML pages of `leadloop report`: each lays out one report's JSON twin (no numbers
are computed here). A report with nothing to show says so instead of drawing empty plots."""

from __future__ import annotations

from html import escape
from typing import Any

import pandas as pd

from reports.render import figure, page, svg, table

REPORT_TITLES = {
    "source_quality": "Source quality",
    "drift": "Drift",
    "follow_up": "Follow-up SLA",
    "funnel_plan": "Funnel plan",
    "model_health": "Model health",
}


def _alerts(alerts: list[dict]) -> str:
    if not alerts:
        return "<p class='good'>No alert.</p>"
    return table(
        ["alert", "about", "since", "evidence", "report"],
        (
            [a["kind"].replace("_", " "), a["subject"], a["since"], a["evidence"], a["report"]]
            for a in alerts
        ),
        text=5,
    )


def _header(title: str, as_of: str) -> str:
    return (
        f"<p class='note'><a href='index.html'>dashboard</a></p><h1>{escape(title)}</h1>"
        f"<p class='note'>As of {escape(as_of[:16])} UTC. No report shows a lead id or any "
        "personal data (the store keeps only keyed hashes of personal fields).</p>"
    )


def source_quality_page(report: dict[str, Any]) -> str:
    monthly = pd.DataFrame(report["monthly"])
    plots = "<p>No leads before this date.</p>"
    if len(monthly):
        plots = (
            "<div class='plots'>" + _win_rates(monthly, report) + _calibration(report) + "</div>"
        )
    return page(
        "Source quality",
        [
            _header("Source quality", report["as_of"]),
            f"<p>Change detection judges leads at least {report['horizon_days']:.0f} days old "
            "(the time in which three quarters of wins close), counting a lead as won if it "
            "was won within that time. A drop is reported when the posterior probability of a "
            f"change is at least {report['change_probability']:.2f} and the rate fell by "
            f"{report['min_relative_drop']:.0%} or more.</p>",
            _alerts(report["alerts"]),
            "<h2>Changes found</h2>",
            table(
                [
                    "source",
                    "since",
                    "90% interval",
                    "P(change)",
                    "rate before",
                    "rate after",
                    "leads after",
                    "stopped converting",
                ],
                (_change_row(c, report["change_probability"]) for c in report["changes"]),
                text=3,
            ),
            plots,
            "<h2>By source and month</h2>",
            table(
                [
                    "source",
                    "month",
                    "leads",
                    "won",
                    "lost",
                    "disqualified",
                    "win rate",
                    "disqualification rate",
                    "predicted",
                    "mature",
                ],
                (
                    [
                        r["source"],
                        r["month"],
                        r["leads"],
                        r["won"],
                        r["lost"],
                        r["disqualified"],
                        r["win_rate"],
                        r["disqualification_rate"],
                        r["predicted"],
                        r["mature"],
                    ]
                    for r in report["monthly"]
                ),
                text=2,
            ),
        ],
    )


def _win_rates(monthly: pd.DataFrame, report: dict[str, Any]) -> str:
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


def _calibration(report: dict[str, Any]) -> str:
    points = [p for p in report["predicted_vs_actual"] if p["predicted"] is not None]
    if not points:
        return ""
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


def _change_row(change: dict[str, Any], threshold: float) -> list[Any]:
    """A source without a credible change shows its probability only, not a made-up date."""
    if change["probability"] < threshold:
        return [change["source"], "no change", None, change["probability"], None, None, None, False]
    return [
        change["source"],
        change["since"],
        " to ".join(change["since_interval"]),
        change["probability"],
        change["rate_before"],
        change["rate_after"],
        change["leads_after"],
        change["dropped"],
    ]


def follow_up_page(report: dict[str, Any]) -> str:
    if not report["hand_overs"]:
        summary, plots = "No hand-over to sales is recorded yet.", ""
    else:
        median = report["median_hours"]
        summary = (
            f"Over all time, {report['breach_rate']:.1%} of {report['hand_overs']:,} hand-overs "
            "breached it; median response "
            + ("unknown (no contact recorded)" if median is None else f"{median:.1f} hours")
            + "."
        )
        plots = f"<div class='plots'>{_response_times(report)}{_response_wins(report)}</div>"
    return page(
        "Follow-up SLA",
        [
            _header("Follow-up SLA", report["as_of"]),
            f"<p>SLA: sales contacts a handed-over lead within {report['sla_hours']:g} hours. "
            f"{summary}</p>",
            _alerts(report["alerts"]),
            plots,
            "<h2>Win rate by response time (closed leads)</h2>",
            table(
                ["response", "closed leads", "win rate"],
                (
                    [b["response"], b["closed_leads"], b["win_rate"]]
                    for b in report["win_rate_by_response"]
                ),
            ),
            "<h2>By source and month of hand-over</h2>",
            table(
                [
                    "source",
                    "month",
                    "hand-overs",
                    "contacted",
                    "median hours",
                    "p90 hours",
                    "breaches",
                    "breach rate",
                ],
                (
                    [
                        r["source"],
                        r["month"],
                        r["handed_over"],
                        r["contacted"],
                        r["median_hours"],
                        r["p90_hours"],
                        r["breaches"],
                        r["breach_rate"],
                    ]
                    for r in report["monthly"]
                ),
            ),
        ],
    )


def _response_times(report: dict[str, Any]) -> str:
    fig = figure(9.5, 4.0)
    axes = fig.subplots()
    for source, part in pd.DataFrame(report["monthly"]).groupby("source"):
        axes.plot(part["month"], part["median_hours"], marker="o", label=source)
    axes.axhline(report["sla_hours"], color="#b42318", linestyle="--", label="SLA")
    axes.set(title="Median hours from hand-over to first contact", ylabel="hours")
    axes.tick_params(axis="x", rotation=60)
    axes.legend(fontsize=7, ncol=2)
    return svg(fig)


def _response_wins(report: dict[str, Any]) -> str:
    buckets = [b for b in report["win_rate_by_response"] if b["win_rate"] is not None]
    if not buckets:
        return ""
    fig = figure()
    axes = fig.subplots()
    axes.bar([b["response"] for b in buckets], [b["win_rate"] for b in buckets], color="#3b6ea8")
    axes.set(title="Win rate by response time", ylabel="win rate")
    axes.tick_params(axis="x", rotation=30)
    return svg(fig)


def funnel_plan_page(report: dict[str, Any]) -> str:
    used = report["capacity_used"]
    capacity = (
        f"Sales capacity {report['sales_capacity_per_month']:,} hand-overs a month: the plan "
        f"uses {used:.0%} of it."
        if used is not None
        else "Set LEADLOOP_SALES_CAPACITY to compare hand-overs with sales capacity."
    )
    needed = report["leads_per_month"]
    return page(
        "Funnel plan",
        [
            _header("Funnel plan", report["as_of"]),
            f"<p>Target: {escape(report['target'])}"
            f"{' (default: last quarter +20%)' if report['default_target'] else ''}. "
            + (
                f"With the current source mix a lead brings {report['revenue_per_lead']:,.0f} "
                f"on average, so the target needs {needed:,.0f} leads a month (now: "
                f"{report['current_leads_per_month']:,.0f}) and "
                f"{report['hand_overs_per_month']:,.0f} hand-overs a month. {capacity}</p>"
                if needed
                else "No source has won deals with amounts yet: no plan can be made.</p>"
            ),
            table(
                [
                    "source",
                    "share of leads",
                    "win rate",
                    "average deal",
                    "revenue per lead",
                    "pipeline multiple",
                    "leads a month",
                    "hand-overs a month",
                ],
                (
                    [
                        r["source"],
                        r["share"],
                        r["win_rate"],
                        r["average_deal"],
                        r["revenue_per_lead"],
                        r["pipeline_multiple"],
                        r["leads_per_month"],
                        r["hand_overs_per_month"],
                    ]
                    for r in report["sources"]
                ),
            ),
        ],
    )


def model_health_page(report: dict[str, Any]) -> str:
    if not report.get("grades"):
        body = (
            f"<p>{escape(report['note'])}.</p>"
            if report.get("note")
            else "<p>No lead created after the champion's holdout window has closed yet.</p>"
        )
    else:
        fig = figure()
        axes = fig.subplots()
        grades = report["grades"]
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
        body = (
            f"<p>{report['leads']:,} leads created after the holdout window the champion was "
            f"judged on (it ends {escape(report['seen_until'][:10])}) have closed: predicted "
            f"{report['predicted']:.1%}, actual {report['actual']:.1%}.</p>"
            + svg(fig)
            + table(
                ["grade", "closed leads", "predicted", "actual", "drifted"],
                (
                    [g["grade"], g["leads"], g["predicted"], g["actual"], g["drifted"]]
                    for g in grades
                ),
            )
        )
    return page(
        "Model health",
        [
            _header(f"Model health: version {report.get('model_version', '–')}", report["as_of"]),
            _alerts(report["alerts"]),
            body,
        ],
    )


def dashboard_page(kpis: dict[str, Any], reports: dict[str, str], alerts: list[dict]) -> str:
    tiles = [
        ("leads", kpis["leads"], "{:,}"),
        ("hand-overs", kpis["hand_overs"], "{:,}"),
        ("win rate", kpis["win_rate"], "{:.1%}"),
        ("disqualification rate", kpis["disqualification_rate"], "{:.1%}"),
        ("median hours to contact", kpis["median_hours_to_contact"], "{:.1f}"),
        ("champion AUC", kpis["champion_auc"], "{:.3f}"),
    ]
    cards = "".join(
        f"<div class='kpi'><b>{'–' if v is None else fmt.format(v)}</b>{escape(name)}</div>"
        for name, v, fmt in tiles
    )
    links = "".join(
        f"<li><a href='{escape(file)}'>{escape(REPORT_TITLES[name])}</a></li>"
        for name, file in reports.items()
    )
    return page(
        "leadloop dashboard",
        [
            "<h1>leadloop: sales and marketing dashboard</h1>",
            f"<p class='note'>As of {escape(kpis['as_of'][:16])} UTC; the figures cover the "
            f"last {kpis['days']} days (win and disqualification rates: outcomes closed in "
            "them).</p>",
            f"<div class='kpis'>{cards}</div>",
            "<h2>Alerts</h2>",
            _alerts(alerts),
            f"<h2>Reports</h2><ul>{links}</ul>",
        ],
    )


def drift_placeholder(report: dict[str, Any]) -> str:
    """The drift page when there is not enough to compare (Evidently renders the real one)."""
    return page("Drift", [_header("Drift", report["as_of"]), f"<p>{escape(report['note'])}.</p>"])
