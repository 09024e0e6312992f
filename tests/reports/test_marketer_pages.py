"""Pages a marketer reads at a glance: rates as percentages beside their counts, one small chart
per source with its drop marked, alerts that lead to their report, the same navigation on
every page (Evidently's drift page included), and /reports/ explaining itself before the first
report."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.schema import FieldType
from reports import pages
from reports.drift import drift_report
from serving.app import create_app
from store.api_keys import Scope
from tests.reports.test_pages import (
    AS_OF,
    EVIL,
    alert,
    body_rows,
    change,
    dashboard,
    follow_up,
    funnel_plan,
    model_health,
    source_quality,
)
from tests.support import api_key, bearer, make_settings

NAVIGATION = [
    "index.html",
    "source_quality.html",
    "drift.html",
    "follow_up.html",
    "funnel_plan.html",
    "model_health.html",
]


class Anchors(HTMLParser):
    """The links of a page and its ids."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if found.get("id"):
            self.ids.add(str(found["id"]))


def anchors(html: str) -> Anchors:
    parser = Anchors()
    parser.feed(html)
    return parser


def figures(html: str) -> dict[str, str]:
    """Each `<figure>`'s id and markup (matplotlib writes each text as a comment beside it)."""
    return dict(re.findall(r'<figure id="([^"]+)">(.*?)</figure>', html, flags=re.S))


def nav_links(html: str) -> list[str]:
    nav = html[html.index("<nav>") : html.index("</nav>")]
    return re.findall(r'href="([^"]+)"', nav)


def several_sources(rates: dict[str, float], months: int = 6) -> dict[str, Any]:
    """A source-quality document with one source per rate, each `months` months long."""
    one = [source_quality(source, months) for source in rates]
    monthly = [
        row | {"win_rate": rates[row["source"]]} for report in one for row in report["monthly"]
    ]
    return one[0] | {
        "monthly": monthly,
        "changes": [c for report in one for c in report["changes"]],
        "predicted_vs_actual": [p for report in one for p in report["predicted_vs_actual"]],
    }


# --- 1. rates as percentages, 2. beside their counts ------------------------------------------


RATE = 0.1234

PAGES_WITH_A_RATE: dict[str, Callable[[], str]] = {
    "source_quality": lambda: pages.source_quality_page(
        source_quality() | {"monthly": [source_quality()["monthly"][0] | {"win_rate": RATE}]}
    ),
    "follow_up": lambda: pages.follow_up_page(
        follow_up() | {"monthly": [follow_up()["monthly"][0] | {"breach_rate": RATE}]}
    ),
    "funnel_plan": lambda: pages.funnel_plan_page(funnel_plan(win_rate=RATE)),
    "model_health": lambda: pages.model_health_page(
        model_health() | {"grades": [model_health()["grades"][0] | {"actual": RATE}]}
    ),
}


@pytest.mark.parametrize("name", PAGES_WITH_A_RATE)
def test_rates_are_percentages_with_one_decimal(name: str) -> None:
    html = PAGES_WITH_A_RATE[name]()
    # With the leads it was measured on beside it, where the cell holds both.
    assert re.search(r"<td>12\.3%( \(of [\d,]+\))?</td>", html)
    assert "0.1234" not in html and "12.34%" not in html


def test_the_source_page_says_how_a_drop_is_decided() -> None:
    report = source_quality()
    report["detection"] |= {"false_alarm_rate": 0.0005, "threshold": 7.6}
    text = " ".join(pages.source_quality_page(report).split())
    assert "multiplies the odds of winning by one of 0.75, 0.5" in text
    assert "reaches ln(1/0.0005) = 7.6" in text and "Ville's inequality" in text


def test_dashboard_rates_are_percentages() -> None:
    html = dashboard()
    assert "<b>26.7%</b>win rate (of 15 closed)" in html and "0.2667" not in html


def test_every_rate_of_the_source_page_shows_what_it_is_a_share_of() -> None:
    rows = body_rows(pages.source_quality_page(source_quality()))
    # The change: each side's eventual win rate with its number of leads.
    assert ["webinar", "2026-02-01", "2026-01-20 to 2026-02-10", "20.0% (of 500)"] in [
        row[:4] for row in rows
    ]
    assert ["5.0% (of 400)", "6 (24.5)", "1 in 2,981", "yes"] in [row[4:] for row in rows]
    # By month: the closed leads right before the rates of them.
    by_month = ["webinar", "2026-01", "1,250", "40", "200", "10", "250", "16.0%", "4.0%", "15.0%"]
    assert [*by_month, "yes"] in rows


def test_other_pages_show_each_rate_beside_its_count() -> None:
    assert ["under 1 hour", "100", "20.0%"] in body_rows(pages.follow_up_page(follow_up()))
    text = " ".join(pages.follow_up_page(follow_up()).split())
    assert "10.0% of 1,500 hand-overs breached it" in text
    grades = body_rows(pages.model_health_page(model_health()))
    assert ["A", "120", "40.0%", "30.0%", "yes"] in grades
    health = " ".join(pages.model_health_page(model_health()).split())
    assert "420 leads created after the holdout window" in health
    assert "predicted 26.0%, actual 24.0%" in health


def test_a_change_without_enough_evidence_shows_how_clear_it_is_not_a_date() -> None:
    unclear = source_quality() | {"changes": [change("webinar", named=False)]}
    rows = body_rows(pages.source_quality_page(unclear))
    assert ["webinar", "no change", "–", "–", "–", "–", "1 in 3", "no"] in rows
    faint = source_quality() | {"changes": [change("webinar", named=False, evidence=0.1)]}
    assert ["webinar", "no change", "–", "–", "–", "–", "often", "no"] in body_rows(
        pages.source_quality_page(faint)
    )


def test_leading_indicators_show_named_changes_only() -> None:
    html = pages.source_quality_page(source_quality())
    assert ["webinar", "disqualification rate rose", "2026-02-01", "4.0% (of 500)"] in [
        row[:4] for row in body_rows(html)
    ]
    quiet = source_quality() | {"leading_indicators": [change("webinar", named=False)]}
    assert "No leading indicator changed." in pages.source_quality_page(quiet)


# --- 3. one small chart per source -------------------------------------------------------------


def test_source_quality_draws_one_small_chart_per_source_on_one_scale() -> None:
    rates = {"paid_search": 0.05, "referral": 0.4, "webinar": 0.16}
    html = pages.source_quality_page(several_sources(rates))
    charts = figures(html)
    assert set(charts) == {f"source-{source}" for source in rates}
    assert [chart.count("<svg") for chart in charts.values()] == [1] * len(rates)
    assert html.count("<svg") == len(rates) + 1  # and the predicted-vs-actual scatter
    # One scale: every chart's y axis has the same tick labels, though the rates differ 8-fold.
    ticks = {
        name: tuple(re.findall(r"<!-- ([\d.]+%) -->", chart)) for name, chart in charts.items()
    }
    assert len(set(ticks.values())) == 1 and "40.0%" in ticks["source-paid_search"]


def test_a_named_drop_is_marked_on_its_source_s_chart_only() -> None:
    document = several_sources({"paid_search": 0.05, "referral": 0.2})
    document["changes"] = [
        change("paid_search", since="2026-03-10"),
        change("referral", named=False),
    ]
    charts = figures(pages.source_quality_page(document))
    assert "<!-- changed 2026-03-10 -->" in charts["source-paid_search"]
    assert "stroke: #b42318" in charts["source-paid_search"]  # the drop's red line
    assert "changed" not in charts["source-referral"] and "#b42318" not in charts["source-referral"]


def test_a_withheld_drop_is_marked_apart() -> None:
    document = several_sources({"paid_search": 0.05, "referral": 0.2})
    withheld = {"named": False, "withheld": "its outcomes stopped arriving"}
    document["changes"] = [change("paid_search", **withheld), change("referral", named=False)]
    html = pages.source_quality_page(document)
    chart = figures(html)["source-paid_search"]
    assert "<!-- withheld: feed stalled -->" in chart and "stroke: #888888" in chart
    assert "changed" not in chart and "#b42318" not in chart
    assert "withheld: its outcomes stopped arriving" in [
        row[-1] for row in body_rows(html) if row[0] == "paid_search"
    ]


# --- 4. alerts link to their report ------------------------------------------------------------


def test_each_dashboard_alert_links_to_its_row_on_its_report_page() -> None:
    found = [alert("paid_search"), alert("all sources") | {"kind": "outcome_feed_stalled"}]
    links = [link for link in anchors(dashboard(found)).links if "#" in link]
    assert links == [
        "source_quality.html#alert-source_stopped_converting-paid_search",
        "source_quality.html#alert-outcome_feed_stalled-all-sources",
    ]
    page = pages.source_quality_page(source_quality("paid_search") | {"alerts": found})
    ids = anchors(page).ids
    assert {link.split("#")[1] for link in links} <= ids


def test_every_report_page_carries_the_dashboard_s_navigation() -> None:
    for html in (
        dashboard(),
        pages.source_quality_page(source_quality()),
        pages.follow_up_page(follow_up()),
        pages.funnel_plan_page(funnel_plan()),
        pages.model_health_page(model_health()),
        pages.drift_placeholder_page({"as_of": AS_OF, "note": "too few leads to compare"}),
    ):
        assert nav_links(html) == NAVIGATION


# --- 5. Evidently's drift page with the reports' header ---------------------------------------


@pytest.fixture(scope="module")
def evidently_html() -> tuple[str, dict[str, Any]]:
    """A real Evidently drift page, of two small frames where `page_views` moved."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"page_views": rng.poisson(3, 400), "industry": rng.choice(["saas", "retail"], 400)}
    )
    current = pd.DataFrame(
        {"page_views": rng.poisson(9, 200), "industry": rng.choice(["saas", "retail"], 200)}
    )
    types = {"page_views": FieldType.NUMERIC, "industry": FieldType.CATEGORICAL}
    since = pd.Timestamp("2026-10-03", tz="UTC")
    snapshot, summary, alerts = drift_report(reference, current, types, since)
    assert alerts, "the fixture's drift should raise an alert"
    document = summary | {"as_of": AS_OF, "alerts": [a.to_dict() for a in alerts]}
    return snapshot.get_html_str(as_iframe=False), document


def test_evidently_s_drift_page_gets_the_header_navigation_and_alerts(
    evidently_html: tuple[str, dict[str, Any]],
) -> None:
    original, document = evidently_html
    html = pages.evidently_drift_page(original, document)
    assert nav_links(html) == NAVIGATION
    body = html.index("<body>")
    assert body < html.index("<nav>") < html.index("<h1>Drift</h1>") < html.index('id="root_')
    assert html.index(".report nav") < html.index("</head>")  # the nav's style, in the head
    assert html.count("<body") == 1 and html.count("</body>") == 1
    assert 'id="alert-feature_drift-page_views"' in html
    assert "page_views" in html[body : html.index('id="root_')]  # named in the header
    # Evidently's own page is all there, in order: only the header and its style were added.
    added = re.sub(r"<style>\n\.report.*?</style>\n", "", html, count=1, flags=re.S)
    added = re.sub(r'<div class="report">.*?</div>', "", added, count=1, flags=re.S)
    assert added == original


def test_the_drift_header_escapes_text_from_the_data(
    evidently_html: tuple[str, dict[str, Any]],
) -> None:
    original, document = evidently_html
    evil = document | {"alerts": [document["alerts"][0] | {"subject": EVIL}]}
    header = pages.evidently_drift_page(original, evil)
    start = header.index("<body>")
    shown = header[start : header.index('id="root_')]
    assert "&lt;script&gt;" in shown and "<script" not in shown


def test_a_page_without_a_body_is_refused_not_half_decorated() -> None:
    with pytest.raises(ValueError, match="no </head> followed by <body>"):
        pages.evidently_drift_page("<html><p>drift</p></html>", {"as_of": AS_OF})


# --- 7. /reports/ before the first report ----------------------------------------------------


def test_reports_before_the_first_one_say_how_to_make_one_to_a_key_holder(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    reader = bearer(api_key(settings, Scope.READ))
    with TestClient(create_app(settings)) as client:
        assert client.get("/reports/").status_code == 401  # still needs a key
        for address in ("/reports/", "/reports/index.html"):
            page = client.get(address, headers=reader)
            assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
            text = " ".join(page.text.split())
            assert "No reports yet" in text and "<code>make report</code>" in text
            assert "<code>make train</code>" in text
        missing = client.get("/reports/source_quality.html", headers=reader)
        assert missing.status_code == 404 and "No reports yet" not in missing.text
        alerts = client.get("/v1/alerts", headers=reader)
        assert alerts.status_code == 404
        assert alerts.json() == {"detail": "no reports yet: run `make report`"}

        (settings.reports_dir / "index.html").write_text("<html><body>dashboard</body></html>")
        written = client.get("/reports/", headers=reader)
        assert written.status_code == 200 and written.text.endswith("dashboard</body></html>")
