"""What is logged and registered in MLflow, read back through MLflow's own APIs."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from features.schema import parse_schema
from models.registry import CHALLENGER, CHAMPION, alias_version, load_champion, mlflow_client
from tests.support import TrainedSetup
from training.metrics import METRIC_NAMES


@pytest.fixture(scope="module")
def model_dir(trained: TrainedSetup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    client = mlflow_client(trained.settings.mlflow_tracking_uri)
    uri = client.get_model_version_download_uri(trained.settings.model_name, "1")
    return Path(
        mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path_factory.mktemp("m")))
    )


def test_first_version_is_the_champion(trained: TrainedSetup) -> None:
    client = mlflow_client(trained.settings.mlflow_tracking_uri)
    assert trained.run.model_version == "1" and trained.run.promoted
    assert str(alias_version(client, trained.settings.model_name, CHAMPION).version) == "1"
    assert alias_version(client, trained.settings.model_name, CHALLENGER) is None
    assert alias_version(client, "no-such-model", CHAMPION) is None


def test_the_version_is_the_run_s_logged_model_and_links_back_to_it(
    trained: TrainedSetup,
) -> None:
    client = mlflow_client(trained.settings.mlflow_tracking_uri)
    version = client.get_model_version(trained.settings.model_name, "1")
    assert version.run_id == trained.run.run_id and version.source.startswith("models:/")
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == trained.run.run_id
    (link,) = json.loads(logged.tags["mlflow.modelVersions"])
    assert (link["name"], str(link["version"])) == (trained.settings.model_name, "1")


def test_pyfunc_flavour_scores_like_the_service(trained: TrainedSetup) -> None:
    """`mlflow.pyfunc.load_model` (what `mlflow models serve` runs) matches the scorer."""
    settings = trained.settings
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@{CHAMPION}")
    client = mlflow_client(settings.mlflow_tracking_uri)
    scorer = load_champion(client, settings.model_name).champion.scorer
    leads = trained.funnel.leads.head(200)
    frame = leads[scorer.feature_fields].astype(
        {"demo_requested": bool, "company_size": float, "page_views": float}
    )
    predicted = pyfunc.predict(frame)
    as_dicts = leads.astype(object).where(leads.notna(), None).to_dict(orient="records")
    np.testing.assert_allclose(predicted["probability"], scorer.predict_proba(as_dicts))
    assert list(predicted.columns) == ["probability", "score", "grade"]
    assert set(predicted["grade"]) <= set("ABCD")


def test_signature_lists_only_model_inputs_and_no_example_is_stored(model_dir: Path) -> None:
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    inputs = [c["name"] for c in yaml.safe_load(mlmodel["signature"]["inputs"])]
    assert "page_views" in inputs and "source" in inputs
    assert not {"email", "full_name", "sales_rating", "lead_id"} & set(inputs)
    assert "saved_input_example_info" not in mlmodel
    assert not list(model_dir.rglob("input_example*"))


def test_logged_model_carries_its_feature_code(model_dir: Path) -> None:
    assert (model_dir / "code" / "features" / "encoding.py").is_file()
    assert (model_dir / "code" / "models" / "scorer.py").is_file()
    requirements = (model_dir / "requirements.txt").read_text().splitlines()
    assert f"lightgbm=={version('lightgbm')}" in requirements


def test_run_logs_metrics_parameters_schema_and_window(
    trained: TrainedSetup, tmp_path: Path
) -> None:
    client = mlflow_client(trained.settings.mlflow_tracking_uri)
    run = client.get_run(trained.run.run_id)
    assert set(METRIC_NAMES) <= set(run.data.metrics)
    assert run.data.metrics["roc_auc"] == pytest.approx(trained.run.metrics["roc_auc"])
    params = run.data.params
    assert params["train_start"] < params["train_end"] <= params["holdout_start"]
    assert int(params["n_holdout"]) == trained.run.card.n_holdout
    assert run.data.tags["promoted"] == "true"
    schema_file = client.download_artifacts(run.info.run_id, "lead_schema.yaml", str(tmp_path))
    assert parse_schema(Path(schema_file).read_text()).name == "demo-b2b"


def test_no_lead_rows_in_any_artifact(trained: TrainedSetup, tmp_path: Path) -> None:
    """No e-mail, name or lead id of the training data in the run's artifacts (PII)."""
    client = mlflow_client(trained.settings.mlflow_tracking_uri)
    local = Path(client.download_artifacts(trained.run.run_id, "", str(tmp_path)))
    uri = client.get_model_version_download_uri(trained.settings.model_name, "1")
    model = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "model")))
    text = "\n".join(
        p.read_text(errors="ignore") for d in (local, model) for p in d.rglob("*") if p.is_file()
    )
    leads: pd.DataFrame = trained.funnel.leads
    for column in ("email", "lead_id"):
        assert not any(value in text for value in leads[column].head(500)), column
