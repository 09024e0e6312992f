"""Each training run logs a model-quality report (HTML and JSON) to MLflow."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from models.registry import mlflow_client
from tests.support import TrainedSetup
from training.evaluation import lift_by_decile
from training.metrics import METRIC_NAMES

VOID = {"meta", "br", "img", "hr", "input", "link"}


class Balanced(HTMLParser):
    """Fails on a closing tag that does not match the open one (a broken page)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()


@pytest.fixture(scope="module")
def artifacts(trained: TrainedSetup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    client = mlflow_client(trained.settings.mlflow_tracking_uri)
    target = tmp_path_factory.mktemp("report")
    return Path(client.download_artifacts(trained.run.run_id, "", str(target)))


def test_the_run_points_at_its_report(trained: TrainedSetup, artifacts: Path) -> None:
    page = Path(trained.quality_page.removeprefix("file://"))
    assert page.name == "quality_report.html" and page.is_file()
    assert {"quality_report.html", "quality_report.json"} <= {p.name for p in artifacts.iterdir()}


def test_report_json_has_every_section(artifacts: Path, trained: TrainedSetup) -> None:
    report = json.loads((artifacts / "quality_report.json").read_text())
    assert set(report["metrics"]) == {"model", "base_rate", "rules", "logistic_regression"}
    assert all(tuple(m) == METRIC_NAMES for m in report["metrics"].values())
    assert report["metrics"]["model"]["roc_auc"] == pytest.approx(trained.run.metrics["roc_auc"])
    assert [d["decile"] for d in report["lift_by_decile"]] == list(range(1, 11))
    assert report["lift_by_decile"][0]["lift"] > 2 > report["lift_by_decile"][-1]["lift"]
    grades = report["grades"]["holdout"]
    assert sum(g["share"] for g in grades) == pytest.approx(1.0)
    rates = [g["win_rate"] for g in grades]
    assert rates == sorted(rates, reverse=True)  # A converts best
    assert {"source", "lead_type"} == set(report["segments"])
    sources = report["segments"]["source"]
    assert {r["value"] for r in sources} >= {"webinar", "referral"}
    largest = sources[0]
    assert largest["leads"] >= 30 and tuple(largest["metrics"]) == METRIC_NAMES
    importance = [r["mean_abs_log_odds"] for r in report["importance"]]
    assert importance == sorted(importance, reverse=True)
    assert report["decision"]["comparisons"][0]["interval_low"] > 0


def test_report_html_is_one_valid_self_contained_page(
    artifacts: Path, trained: TrainedSetup
) -> None:
    html = (artifacts / "quality_report.html").read_text()
    parser = Balanced()
    parser.feed(html)
    assert parser.open == [] and parser.external == []
    assert html.count("<svg") == 2  # calibration and lift plots
    for heading in ("Calibration and lift", "Grades", "By source", "Leakage guard"):
        assert heading in html
    leads = trained.funnel.leads
    assert not any(email in html for email in leads["email"])
    assert not any(lead_id in html for lead_id in leads["lead_id"].head(2_000))


def test_lift_by_decile_on_a_known_ranking() -> None:
    y = np.r_[np.ones(10), np.zeros(90)]
    p = np.linspace(1, 0, 100)
    deciles = lift_by_decile(y, p, np.ones(100))
    assert deciles[0]["win_rate"] == 1.0 and deciles[0]["lift"] == pytest.approx(10.0)
    assert all(d["win_rate"] == 0.0 for d in deciles[1:])
