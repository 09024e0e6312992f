"""`leadloop score`: a file of leads scored as the API would, a chunk at a time; rows the API
would refuse listed with their line; no half-written output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.schema import LeadSchema, save_schema
from features.validation import lead_model
from models.registry import load_champion
from serving.batch_scoring import BatchFileError, score_file
from serving.cli import app as cli
from store.export_reader import read_table
from tests.support import TrainedSetup

FILE_LEADS = 300


@pytest.fixture(scope="module")
def leads(trained: TrainedSetup) -> pd.DataFrame:
    """Demo leads as a CRM export holds them (every schema field, PII included)."""
    return trained.funnel.leads.sample(FILE_LEADS, random_state=11).reset_index(drop=True)


@pytest.fixture(scope="module")
def champion(trained: TrainedSetup):  # type: ignore[no-untyped-def]
    found = load_champion(trained.client, trained.settings.model_name)
    assert found.champion is not None
    return found.champion


def env(trained: TrainedSetup) -> dict[str, str]:
    return {
        "LEADLOOP_DATABASE_URL": trained.settings.database_url,
        "LEADLOOP_MLFLOW_TRACKING_URI": trained.settings.mlflow_tracking_uri,
    }


@pytest.mark.parametrize("reasons", [True, False])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_is_scored_as_the_scorer_scores_its_leads(
    tmp_path: Path,
    leads: pd.DataFrame,
    champion,
    demo_schema: LeadSchema,
    suffix: str,
    reasons: bool,
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / f"leads{suffix}"
    leads.to_csv(source, index=False) if suffix == ".csv" else leads.to_parquet(source)
    out = tmp_path / f"scores{suffix}"
    result = score_file(champion, demo_schema, source, out, reasons=reasons, chunk_rows=64)
    assert (result.scored, result.refused_rows) == (FILE_LEADS, 0)
    scores = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(scores.columns) == ["lead_id", "probability", "score", "grade", "model_version"] + (
        ["reasons"] if reasons else []
    )
    assert scores["lead_id"].tolist() == leads["lead_id"].tolist()
    records = leads.astype(object).where(leads.notna(), None).to_dict(orient="records")
    expected = champion.scorer.score(records, reasons=reasons)
    assert scores["probability"].to_numpy() == pytest.approx([e.probability for e in expected])
    assert scores["grade"].tolist() == [e.grade for e in expected]
    assert set(scores["model_version"].astype(str)) == {champion.version}
    if reasons:
        first = json.loads(scores["reasons"][0])
        assert [r["field"] for r in first] == [r.field for r in expected[0].reasons or []]
        assert all(r["text"] for r in first)  # in the schema's words, as the API gives them


def test_chunks_do_not_change_the_output(
    tmp_path: Path, leads: pd.DataFrame, champion, demo_schema: LeadSchema
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "leads.csv"
    leads.to_csv(source, index=False)
    outputs = []
    for chunk in (7, 10_000):
        out = tmp_path / f"scores-{chunk}.csv"
        score_file(champion, demo_schema, source, out, reasons=False, chunk_rows=chunk)
        outputs.append(pd.read_csv(out))
    small, whole = outputs
    assert "reasons" not in small.columns
    for exact in ("lead_id", "score", "grade", "model_version"):
        assert small[exact].tolist() == whole[exact].tolist()
    # numpy's vector loops may round the last bit differently for another array length
    assert small["probability"].to_numpy() == pytest.approx(whole["probability"], rel=1e-12)


def test_plain_and_odd_rows_alike_are_scored_as_the_api_scores_them(
    tmp_path: Path, champion, demo_schema: LeadSchema
) -> None:  # type: ignore[no-untyped-def]
    """Plain rows are checked and encoded a column at a time, the others (spaces around a
    number, "on", a Unix time) one by one by the API's lead model: both give the API's score."""
    source = tmp_path / "leads.csv"
    source.write_text(
        "lead_id,page_views,demo_requested,created_at,source\n"
        "L-1,3,true,2026-01-01T00:00:00Z,webinar\n"
        " L-2 , 12 ,on,1767225600, webinar \n"
        "L-3,,,,\n"
        "L-4,-1,,,\n"
        "L-5,7.5,no,2026-02-01,referral\n"
    )
    out = tmp_path / "scores.csv"
    result = score_file(champion, demo_schema, source, out, reasons=False, chunk_rows=3)
    assert (result.scored, [(r.line, r.field) for r in result.refused]) == (4, [(5, "page_views")])
    lead_in = lead_model(demo_schema)
    records = read_table(source).frame.drop(index=3).to_dict(orient="records")
    typed = [lead_in.model_validate(r).model_dump() for r in records]
    expected = champion.scorer.score(typed, reasons=False)
    scores = pd.read_csv(out)
    assert scores["lead_id"].tolist() == ["L-1", "L-2", "L-3", "L-5"]
    assert scores["probability"].to_numpy() == pytest.approx([e.probability for e in expected])
    assert scores["score"].tolist() == [e.score for e in expected]
    assert scores["grade"].tolist() == [e.grade for e in expected]


def test_bad_rows_are_listed_with_their_lines_and_the_others_scored(
    tmp_path: Path, trained: TrainedSetup
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(
        "lead_id,page_views,demo_requested,created_at\n"
        "ok-1,3,true,2026-01-01T00:00:00Z\n"
        "bad-number,many,true,\n"
        "bad-time,1,,3000-01-01\n"
        "ok-2,,,\n"
        "short,1\n"
    )
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        cli, ["score", "--in", str(source), "--out", str(out)], env=env(trained)
    )
    assert result.exit_code == 2, result.output
    assert "line 3: page_views" in result.stderr and "line 4: created_at" in result.stderr
    assert "line 6: 2 fields where the header has 4" in result.stderr
    assert "Traceback" not in result.output
    assert pd.read_csv(out)["lead_id"].tolist() == ["ok-1", "ok-2"]


def test_an_unknown_column_refuses_the_file_and_writes_nothing(
    tmp_path: Path, trained: TrainedSetup
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("lead_id,page_views,colour\nx,3,red\n")
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(
        cli, ["score", "--in", str(source), "--out", str(out)], env=env(trained)
    )
    assert result.exit_code == 2 and "'colour'" in result.stderr
    assert list(tmp_path.iterdir()) == [source]


def test_both_the_schemas_id_column_and_lead_id_refuse_the_file(
    tmp_path: Path, champion, demo_schema: LeadSchema
) -> None:  # type: ignore[no-untyped-def]
    """An export named by the schema's id field (`crm_id`) that also has a `lead_id` column has
    two ids a row: which one the scores carry cannot be guessed."""
    document = demo_schema.model_dump(mode="json")
    for described in document["fields"]:
        if described["role"] == "id":
            described["name"] = "crm_id"
    schema = LeadSchema.model_validate(document)
    source = tmp_path / "leads.csv"
    source.write_text("crm_id,lead_id,page_views\nc-1,l-1,3\nc-2,l-2,4\n")
    with pytest.raises(BatchFileError, match="'crm_id' .* and 'lead_id'"):
        score_file(champion, schema, source, tmp_path / "scores.csv", reasons=False)
    assert list(tmp_path.iterdir()) == [source]


def test_an_interrupted_run_leaves_no_output(
    tmp_path: Path, leads: pd.DataFrame, champion, demo_schema: LeadSchema
) -> None:  # type: ignore[no-untyped-def]
    source, out = tmp_path / "leads.csv", tmp_path / "scores.csv"
    leads.to_csv(source, index=False)
    out.write_text("yesterday's scores\n")

    def interrupted(done: float) -> None:
        if done < 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(champion, demo_schema, source, out, False, chunk_rows=50, progress=interrupted)
    assert out.read_text() == "yesterday's scores\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv", "scores.csv"]


def test_without_a_champion_the_command_says_so(tmp_path: Path) -> None:
    from tests.support import empty_mlflow_store

    source = tmp_path / "leads.csv"
    source.write_text("lead_id\nx\n")
    result = CliRunner().invoke(
        cli,
        ["score", "--in", str(source), "--out", str(tmp_path / "out.csv")],
        env={
            "LEADLOOP_DATABASE_URL": f"sqlite:///{tmp_path}/leadloop.db",
            "LEADLOOP_MLFLOW_TRACKING_URI": empty_mlflow_store(tmp_path / "mlflow"),
        },
    )
    assert result.exit_code == 2 and "make train" in result.stderr


def test_a_champion_the_schema_types_otherwise_is_refused(
    tmp_path: Path, trained: TrainedSetup, demo_schema: LeadSchema
) -> None:
    """Scored under a schema that types one of the model's fields otherwise, a file would be
    encoded wrongly: the command refuses, as the API refuses to serve such a model."""
    document = demo_schema.model_dump(mode="json")
    for described in document["fields"]:
        if described["name"] == "page_views":
            described.update(type="categorical", minimum=None, maximum=None, monotone=None)
    schema_file = tmp_path / "schema.yaml"
    save_schema(LeadSchema.model_validate(document), schema_file)
    source = tmp_path / "leads.csv"
    source.write_text("lead_id,page_views\nx,3\n")
    result = CliRunner().invoke(
        cli,
        ["score", "--in", str(source), "--out", str(tmp_path / "out.csv")],
        env=env(trained) | {"LEADLOOP_SCHEMA": str(schema_file)},
    )
    assert result.exit_code == 2 and "page_views" in result.stderr, result.output
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_output_folder_is_an_error(
    tmp_path: Path, champion, demo_schema: LeadSchema
) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "leads.csv"
    source.write_text("lead_id\nx\n")
    with pytest.raises(BatchFileError, match="does not exist"):
        score_file(champion, demo_schema, source, tmp_path / "no" / "out.csv", reasons=False)


def test_parquet_ids_stay_whole_numbers_in_every_chunk(
    tmp_path: Path, champion, demo_schema: LeadSchema
) -> None:  # type: ignore[no-untyped-def]
    """An integer id column with a gap: pandas would make it floats ("104.0"), and only in the
    chunks that have the gap."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, out = tmp_path / "leads.parquet", tmp_path / "scores.csv"
    ids = pa.array([101, 102, None, 104], pa.int64())
    pq.write_table(pa.table({"lead_id": ids, "page_views": [1.0, 2.0, 3.0, 4.0]}), source)
    result = score_file(champion, demo_schema, source, out, reasons=False, chunk_rows=2)
    assert pd.read_csv(out, dtype=str)["lead_id"].tolist() == ["101", "102", "104"]
    assert [(row.line, row.field) for row in result.refused] == [(4, "lead_id")]


def test_a_separator_of_more_than_one_character_is_refused(
    tmp_path: Path, trained: TrainedSetup
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("lead_id\nx\n")
    result = CliRunner().invoke(
        cli,
        ["score", "--in", str(source), "--out", str(tmp_path / "o.csv"), "--sep", ";;"],
        env=env(trained),
    )
    assert result.exit_code == 2 and "--sep takes one character" in result.stderr
