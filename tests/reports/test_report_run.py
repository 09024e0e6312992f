"""`leadloop report` end to end: every report, its JSON twin, alerts, dashboard, no PII."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from features.schema import LeadSchema
from reports.service import ReportRun
from serving.cli import app as cli
from serving.settings import Settings
from store.demo_funnel import DemoFunnel
from tests.reports.test_model_quality import Balanced
from tests.support import NOW, TrainedSetup, api_client, chromium, open_store, report, seed

REPORTS = ("source_quality", "follow_up", "funnel_plan", "model_health", "drift")
CANARY_EMAIL = "canary.bird@leak-test.example"
CANARY_NAME = "Zebulon Canarywing"


@dataclass(frozen=True)
class Written:
    settings: Settings
    run: ReportRun


#: The reports' date: see `written`.
AS_OF = NOW + timedelta(hours=1)


@pytest.fixture(scope="module")
def written(
    trained: TrainedSetup,
    small_funnel: DemoFunnel,
    demo_schema: LeadSchema,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Written]:
    """A store like production's: the demo funnel, then leads scored and followed up through
    the API, some carrying canary PII; the champion of the `trained` setup."""
    directory = tmp_path_factory.mktemp("reports")
    settings = trained.settings.model_copy(
        update={
            "database_url": f"sqlite:///{directory}/store.db",
            "reports_dir": directory / "out",
        }
    )
    sessions = open_store(settings.database_url)
    seed(sessions, small_funnel, demo_schema)
    leads = [
        {
            "lead_id": f"canary-{i}",
            "email": CANARY_EMAIL,
            "full_name": CANARY_NAME,
            "source": "webinar",
            "page_views": i,
            "created_at": (NOW - timedelta(days=1)).isoformat(),
        }
        for i in range(5)
    ]
    with api_client(settings) as client:
        assert client.post("/v1/scores", json={"leads": leads}).status_code == 200
        events = [
            {
                "event_id": f"canary-{i}-{kind}",
                "lead_id": f"canary-{i}",
                "outcome": kind,
                "occurred_at": NOW.isoformat(),
            }
            for i in range(5)
            for kind in ("handed_over", "contacted")
        ]
        assert client.post("/v1/outcomes", json={"outcomes": events}).status_code == 200
    # As of the funnel's own clock: left to its default, the report's date is the store's latest
    # row, here the canaries' scores stamped with the real clock, which moves the 30-day
    # window off the funnel's outcomes (issue 13 is about that default).
    run = report(settings, sessions, settings.reports_dir, AS_OF, None)
    sessions.kw["bind"].dispose()
    yield Written(settings, run)


def test_every_report_has_a_page_and_a_json_twin(written: Written) -> None:
    out = written.run.out
    assert set(written.run.reports) == set(REPORTS)
    for name in REPORTS:
        assert (out / f"{name}.html").stat().st_size > 1_000
        document = json.loads((out / f"{name}.json").read_text())
        assert document["as_of"] == written.run.kpis["as_of"]
    for name in ("index.html", "alerts.json", "kpis.json"):
        assert (out / name).is_file()
    health = json.loads((out / "model_health.json").read_text())
    assert health["model_version"] == "1" and {g["grade"] for g in health["grades"]} <= set("ABCD")
    follow = json.loads((out / "follow_up.json").read_text())
    assert follow["hand_overs"] > 1_000 and 0 < follow["breach_rate"] < 1
    plan = json.loads((out / "funnel_plan.json").read_text())
    assert plan["default_target"] and plan["leads_per_month"] > 0


def test_pages_parse_and_reference_nothing_outside(written: Written) -> None:
    out = written.run.out
    siblings = {p.name for p in out.iterdir()}
    for page in out.glob("*.html"):
        parser = Balanced()
        parser.feed(page.read_text())
        outside = [
            ref
            for ref in parser.external
            if ref.split("#")[0] not in siblings and not ref.startswith("data:")
        ]
        assert outside == [], page.name
        if page.name != "drift.html":  # Evidently's page leaves some tags to the browser
            assert parser.open == [], page.name


def test_no_pii_in_any_report_file(written: Written, small_funnel: DemoFunnel) -> None:
    text = "\n".join(p.read_text(errors="ignore") for p in written.run.out.iterdir())
    for canary in (CANARY_EMAIL, CANARY_NAME, *small_funnel.leads["email"].head(200)):
        assert canary not in text


def test_alerts_are_the_same_in_every_place(written: Written) -> None:
    run = written.run
    stored = json.loads((run.out / "alerts.json").read_text())
    assert stored == run.alerts
    assert all(set(a) == {"kind", "subject", "since", "evidence", "report"} for a in stored)
    assert all(a["report"] in {f"{name}.html" for name in REPORTS} for a in stored)
    dashboard = (run.out / "index.html").read_text()
    assert all(a["subject"] in dashboard for a in stored)
    with api_client(written.settings) as client:
        served = client.get("/v1/alerts")
        assert served.status_code == 200
        feed = served.json()
        assert [a | {"link": "/reports/" + a["report"]} for a in stored] == feed["alerts"]
        assert feed["kpis"] == run.kpis
        for alert in feed["alerts"]:
            assert client.get(alert["link"]).status_code == 200
        assert client.get("/reports", follow_redirects=False).headers["location"] == "/reports/"
        assert client.get("/reports/").text == dashboard
        assert client.get("/reports/source_quality.json").json()["as_of"] == run.kpis["as_of"]
        assert client.get("/reports/../store.db").status_code == 404


def test_kpis_cover_the_last_thirty_days(written: Written) -> None:
    kpis = written.run.kpis
    assert kpis["days"] == 30 and kpis["leads"] > 0 and kpis["hand_overs"] > 0
    assert 0 < kpis["win_rate"] < 1 and kpis["champion_version"] == "1"
    assert kpis["champion_auc"] > 0.7


def test_the_cli_prints_one_json_document(written: Written, tmp_path: Path) -> None:
    settings = written.settings
    env = {
        "LEADLOOP_DATABASE_URL": settings.database_url,
        "LEADLOOP_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    result = CliRunner().invoke(
        cli,
        ["report", "--out", str(tmp_path), "--json", "--target", "500000/quarter"]
        + ["--as-of", AS_OF.isoformat()],
        env=env,
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["reports"]) == set(REPORTS) and summary["alerts"] == written.run.alerts
    plan = json.loads((tmp_path / "funnel_plan.json").read_text())
    assert plan["target_amount"] == 500_000 and plan["months"] == 3
    bad = CliRunner().invoke(cli, ["report", "--out", str(tmp_path), "--target", "lots"], env=env)
    assert bad.exit_code == 2 and "AMOUNT/PERIOD" in bad.output


def test_pages_render_in_headless_chromium(written: Written, tmp_path: Path) -> None:
    browser = chromium()
    for name in ("index", *REPORTS):
        page = written.run.out / f"{name}.html"
        dom = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / name}",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        assert "<body" in dom and len(dom) > 1_000, name
