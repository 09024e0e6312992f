"""The served model follows the registry's champion without a restart.

`leadloop train`, `promote` and `rollback` move the `champion` alias in MLflow; a running
service looks at the alias every `LEADLOOP_MODEL_POLL_SECONDS`. A new champion is loaded in a
worker thread while the old one keeps serving, checked against the service's lead schema, and
swapped in with one assignment: every request reads the model once, so each answer carries
exactly one version. A version that cannot be loaded, or reads fields the service's schema does
not have, is refused once (and said so in `/readyz` and `/v1/model`); the old model keeps
serving, and the version is not tried again until the alias moves to another one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.schema import LeadSchema
from models.registry import CHAMPION, LoadedScorer, alias_version, load_scorer
from models.scorer import ScorerFormatError

log = logging.getLogger("leadloop.serving")


@dataclass
class RegistryView:
    """What the service last saw in the registry, for `/readyz` and `/v1/model`."""

    #: The version the `champion` alias names (None: no champion, or not read yet).
    champion: str | None = None
    #: Why the registry could not be read at the last look (None when it could).
    problem: str | None = None
    #: Versions refused, with why: they are not tried again.
    refused: dict[str, str] = field(default_factory=dict)


def schema_problem(loaded: LoadedScorer, schema: LeadSchema) -> str | None:
    """Why a model cannot serve requests validated by `schema` (None if it can): every field it
    reads must be a field of the schema, of the same type."""
    own = loaded.scorer.schema.by_name
    wrong = [
        name
        for name in loaded.scorer.feature_fields
        if name not in schema.by_name or schema.by_name[name].type != own[name].type
    ]
    if not wrong:
        return None
    return (
        f"it reads fields this service's lead schema lacks or types otherwise: {', '.join(wrong)}"
    )


class ChampionWatch:
    """Looks at the registry's `champion` alias and loads the version it names when it is new."""

    def __init__(self, client: MlflowClient, model_name: str, schema: LeadSchema) -> None:
        self.client = client
        self.model_name = model_name
        self.schema = schema
        self.view = RegistryView()
        self._busy = threading.Lock()

    def check(self, serving: LoadedScorer | None) -> LoadedScorer | None:
        """The champion to serve instead of `serving`, if the alias names a new loadable one;
        None to keep `serving`. One look at a time: a look still running (a slow registry) makes
        this one return at once."""
        if not self._busy.acquire(blocking=False):
            return None
        try:
            return self._look(serving)
        finally:
            self._busy.release()

    def _look(self, serving: LoadedScorer | None) -> LoadedScorer | None:
        try:
            named = alias_version(self.client, self.model_name, CHAMPION)
        except MlflowException as exc:
            self.view.problem = f"the model registry cannot be read: {exc.message}"
            return None
        self.view.problem = None
        version = None if named is None else str(named.version)
        self.view.champion = version
        if version is None or version in self.view.refused:
            return None
        if serving is not None and serving.version == version:
            return None
        try:
            loaded = load_scorer(self.client, self.model_name, version)
        except (ScorerFormatError, OSError, MlflowException) as exc:
            return self._refuse(version, f"cannot be loaded: {exc}")
        problem = schema_problem(loaded, self.schema)
        if problem is not None:
            return self._refuse(version, problem)
        log.info("serving %s version %s", self.model_name, version)
        return loaded

    def _refuse(self, version: str, why: str) -> None:
        self.view.refused[version] = why
        log.error("refused %s version %s: %s", self.model_name, version, why)
        return None
