"""`leadloop report` on stores that are empty, young, imported, or older than the champion."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.schema_inference import ColumnRoles
from reports.service import MANIFEST_FILE
from serving.cli import app as cli
from store.import_plan import OutcomeMapping
from store.importing import ImportRequest, import_file
from tests.support import NOW, PII_KEY, TrainedSetup, api_client, make_settings, open_store, report

EXPORT = """id,visits,source,stage,created,closed
a,3,ads,won,2025-01-01,2025-02-01
b,1,ads,lost,2025-01-02,2025-01-20
c,2,events,open,2025-01-03,
"""


def pages_of(out: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in out.iterdir()}


def test_an_empty_store_gets_reports_that_say_so(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    sessions = open_store(settings.database_url)
    run = report(settings, sessions, tmp_path / "out", None, None)
    sessions.kw["bind"].dispose()
    files = pages_of(run.out)
    assert {"index.html", "alerts.json", "kpis.json", "drift.html"} <= set(files)
    assert run.alerts == [] and run.kpis["leads"] == 0
    assert "No hand-over" in files["follow_up.html"]
    assert "no champion" in json.loads(files["model_health.json"])["note"]


def test_an_imported_store_without_lifecycle_events(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    sessions = open_store(settings.database_url)
    (tmp_path / "export.csv").write_text(EXPORT)
    import_file(
        ImportRequest(
            path=tmp_path / "export.csv",
            roles=ColumnRoles(id="id", time="created", source="source"),
            outcomes=OutcomeMapping("stage", frozenset({"won"}), frozenset({"lost"})),
            schema_out=tmp_path / "schema.yaml",
            closed_at="closed",
        ),
        sessions,
        PII_KEY,
        NOW,
    )
    run = report(
        settings.model_copy(update={"schema_path": tmp_path / "schema.yaml"}),
        sessions,
        tmp_path / "out",
        None,
        None,
    )
    sessions.kw["bind"].dispose()
    follow = json.loads((run.out / "follow_up.json").read_text())
    assert follow["hand_overs"] == 0 and follow["median_hours"] is None
    quality = json.loads((run.out / "source_quality.json").read_text())
    assert {r["source"] for r in quality["monthly"]} == {"ads", "events"}


def test_a_champion_newer_than_the_report_date_is_not_used(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    """Judging March's leads with a model that learnt from July would be hindsight."""
    holdout_end = pd.Timestamp(trained.run.card.seen_until)
    early = holdout_end - pd.Timedelta(days=120)
    run = report(trained.settings, trained.sessions, tmp_path, early.to_pydatetime(), None)
    assert run.kpis["champion_version"] is None and run.kpis["as_of"] == early.isoformat()
    health = json.loads((tmp_path / "model_health.json").read_text())
    assert health["grades"] == [] and "predates" in health["note"]
    later = report(trained.settings, trained.sessions, tmp_path / "now", None, None)
    assert later.kpis["champion_version"] == "1"


def test_a_run_removes_only_what_the_previous_run_wrote(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    """`--out` may be a folder with the user's own files: they are never deleted."""
    theirs = tmp_path / "board_minutes.html"
    theirs.write_text("the user's own page")
    first = report(trained.settings, trained.sessions, tmp_path, None, None)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert "index.html" in manifest and theirs.name not in manifest
    retired = tmp_path / "retired_report.html"  # a page an earlier version wrote
    retired.write_text("from another time")
    (tmp_path / MANIFEST_FILE).write_text(json.dumps([*manifest, retired.name, "../escape"]))
    report(trained.settings, trained.sessions, tmp_path, None, None)
    assert theirs.read_text() == "the user's own page"
    assert not retired.exists()
    assert (first.out / "index.html").exists()
    assert not list(tmp_path.glob(".*partial"))


def test_the_cli_refuses_bad_report_options(tmp_path: Path) -> None:
    env = {"LEADLOOP_DATABASE_URL": f"sqlite:///{tmp_path}/store.db"}
    for args, says in [
        (["--target", "1e999/month"], "positive and finite"),
        (["--out", "/proc/leadloop-cannot-write-here"], "cannot write reports"),
    ]:
        result = CliRunner().invoke(cli, ["report", *args], env=env)
        assert result.exit_code == 2 and says in result.output, result.output


def test_reports_are_a_404_until_the_first_run(tmp_path: Path) -> None:
    with api_client(make_settings(tmp_path)) as client:
        assert client.get("/reports/").status_code == 404
        assert client.get("/v1/alerts").status_code == 404


@pytest.mark.parametrize("damage", ["{not json", '{"alerts": []}'])
def test_damaged_report_files_are_a_503(tmp_path: Path, damage: str) -> None:
    settings = make_settings(tmp_path)
    settings.reports_dir.mkdir(parents=True)
    (settings.reports_dir / "alerts.json").write_text("[]")
    (settings.reports_dir / "kpis.json").write_text(damage)
    with api_client(settings) as client:
        assert client.get("/v1/alerts").status_code == 503
