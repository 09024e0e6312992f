"""Save scorers to MLflow, move the registry aliases, load what an alias points to.

Promotion is data: serving loads whatever version the `champion` alias names.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from features.schema import FieldType
from models.card import ModelCard
from models.scorer import Scorer, ScorerFormatError

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
#: Packages copied into every logged model so it scores outside this repository too.
_CODE_PACKAGES = ("features", "models")
_COLUMN_TYPES = {
    FieldType.NUMERIC: "double",
    FieldType.BOOLEAN: "boolean",
    FieldType.CATEGORICAL: "string",
}


@dataclass(frozen=True)
class LoadedScorer:
    """A scorer with the registry version it was loaded from."""

    scorer: Scorer
    version: str
    run_id: str

    @property
    def card(self) -> ModelCard:
        """Every served scorer has one: `load_scorer` refuses a version without it."""
        assert self.scorer.card is not None
        return self.scorer.card


@dataclass(frozen=True)
class ChampionLookup:
    """The champion, or why there is none to use: no champion yet, or one that cannot load."""

    champion: LoadedScorer | None
    #: Why a champion the registry names could not be loaded (None when it loaded, or when
    #: there is no champion at all).
    problem: str | None = None


def model_signature(scorer: Scorer) -> ModelSignature:
    """Signature from the schema alone: no real lead is stored as an input example (PII)."""
    types = {f.name: f.type for f in scorer.schema.fields}
    inputs = Schema(
        [
            ColSpec(_COLUMN_TYPES[types[name]], name, required=False)
            for name in scorer.feature_fields
        ]
    )
    outputs = Schema(
        [ColSpec("double", "probability"), ColSpec("long", "score"), ColSpec("string", "grade")]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _pip_requirements() -> list[str]:
    """What the logged code imports, pinned to this environment (no slow inference by MLflow)."""
    packages = ("mlflow", "lightgbm", "numpy", "pandas", "pydantic", "pyyaml", "scikit-learn")
    return [f"{p}=={package_version(p)}" for p in packages]


def log_scorer(client: MlflowClient, scorer: Scorer, model_name: str) -> ModelVersion:
    """Log the scorer to the active run and register it as a new version of `model_name`."""
    code_paths = [str(Path(__import__(p).__file__).parent) for p in _CODE_PACKAGES]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # No input example on purpose: it would store real lead rows (PII) in the artifact.
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        data_path = Path(tmp) / "scorer"
        scorer.save(data_path)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            loader_module="models.pyfunc",
            data_path=str(data_path),
            code_paths=code_paths,
            signature=model_signature(scorer),
            pip_requirements=_pip_requirements(),
        )
    # Registered through the client rather than `registered_model_name=`, which prints
    # "Successfully registered model ..." on stderr whatever the log level.
    try:
        client.create_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        model_name, info.model_uri, run_id=info.run_id, model_id=info.model_id
    )
    # What the fluent path records too: the MLflow UI links the logged model to its version.
    link = [{"name": model_name, "version": version.version}]
    client.set_logged_model_tags(info.model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(link)})
    return version


def mlflow_client(tracking_uri: str) -> MlflowClient:
    """A client whose model registry lives in the tracking store (as with `mlflow server`)."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def alias_version(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The version an alias points to, or None when the model or the alias does not exist."""
    try:
        registered = client.get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = registered.aliases.get(alias)
    return None if version is None else client.get_model_version(model_name, version)


def load_scorer(client: MlflowClient, model_name: str, version: str) -> LoadedScorer:
    """Download one registered version and load its scorer with this process's code."""
    model_version = client.get_model_version(model_name, version)
    artifact_uri = client.get_model_version_download_uri(model_name, version)
    # MLflow draws a progress bar for every download: noise in logs, unless asked for.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=tmp))
        data = Model.load(local).flavors["python_function"]["data"]
        scorer = Scorer.load(local / data)
    if scorer.card is None:
        raise ScorerFormatError(f"{model_name} version {version} carries no model card")
    return LoadedScorer(scorer=scorer, version=str(version), run_id=model_version.run_id)


def load_champion(client: MlflowClient, model_name: str) -> ChampionLookup:
    """The version `champion` names, loaded with this process's code.

    A champion that cannot be loaded (written by an incompatible leadloop, files missing or
    damaged) is not an error here: every caller can go on without it and says why. A registry
    that cannot be reached raises `MlflowException`.
    """
    model_version = alias_version(client, model_name, CHAMPION)
    if model_version is None:
        return ChampionLookup(None)
    try:
        loaded = load_scorer(client, model_name, model_version.version)
    except (ScorerFormatError, OSError, MlflowException) as exc:
        problem = f"{model_name} version {model_version.version} cannot be loaded: {exc}"
        return ChampionLookup(None, problem)
    return ChampionLookup(loaded)


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str) -> str:
    """The experiment's id, creating it with an explicit artifact location on first use."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


class RegistryError(LookupError):
    """A version or a previous champion that the registry does not have."""


#: Registered-model tag listing the versions that were champion, oldest first.
HISTORY_TAG = "champion_history"


def champion_history(client: MlflowClient, model_name: str) -> list[str]:
    tags = client.get_registered_model(model_name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def _crown(client: MlflowClient, model_name: str, version: str, history: list[str]) -> None:
    history = [v for i, v in enumerate(history) if i == 0 or v != history[i - 1]]
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_registered_model_tag(model_name, HISTORY_TAG, ",".join(history))
    challenger = alias_version(client, model_name, CHALLENGER)
    if challenger is not None and str(challenger.version) == version:
        client.delete_registered_model_alias(model_name, CHALLENGER)


def record_promotion(client: MlflowClient, model_name: str, version: str, promote: bool) -> None:
    """Point `champion` at a promoted version; otherwise leave it and mark `challenger`."""
    if promote:
        _crown(client, model_name, version, [*champion_history(client, model_name), version])
    else:
        client.set_registered_model_alias(model_name, CHALLENGER, version)


def _sign(
    client: MlflowClient, model_name: str, version: str, action: str, by: str, why: str
) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    for key, value in {f"{action}_by": by, f"{action}_at": stamp, f"{action}_reason": why}.items():
        client.set_model_version_tag(model_name, version, key, value)


def promote_by_hand(
    client: MlflowClient, model_name: str, version: str, by: str, reason: str
) -> None:
    """Make `version` the champion, recording who did it and why on the version."""
    try:
        client.get_model_version(model_name, version)
    except MlflowException as exc:
        raise RegistryError(f"{model_name} has no version {version}") from exc
    _crown(client, model_name, version, [*champion_history(client, model_name), version])
    _sign(client, model_name, version, "promoted", by, reason)


def rollback(client: MlflowClient, model_name: str, by: str, reason: str) -> str:
    """Give `champion` back to the version that held it before; return that version."""
    try:
        history = champion_history(client, model_name)
    except MlflowException as exc:
        raise RegistryError(f"no registered model {model_name!r}") from exc
    if len(history) < 2:
        raise RegistryError(f"{model_name} has no earlier champion to roll back to")
    demoted, previous = history[-1], history[-2]
    _crown(client, model_name, previous, history[:-1])
    _sign(client, model_name, demoted, "rolled_back", by, reason)
    _sign(client, model_name, previous, "restored", by, reason)
    return previous
