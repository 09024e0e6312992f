"""Registered model versions other than the one served, loaded when a lead's older score asks.

Explaining why a score moved means scoring the lead's data again with the model that made the
earlier score, which may be a champion long replaced. Those versions are downloaded from the
registry on first use and the last few kept: a rep looking through leads after a retraining
asks for the same one or two versions again and again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.registry import LoadedScorer, load_scorer
from models.scorer import ScorerFormatError

#: Versions kept loaded besides the served one (each is a model's trees, a few MB).
KEPT_VERSIONS = 4
#: Seconds a version that could not be loaded is not asked for again: a registry that is down
#: answers each request at once instead of holding a thread per request until it times out.
RETRY_AFTER_SECONDS = 60.0


class VersionUnavailable(LookupError):
    """A version the registry does not have, cannot hand over, or that cannot be loaded."""


class ModelVersions:
    """The versions of one registered model, loaded on demand, the last `keep` used kept."""

    def __init__(self, client: MlflowClient, model_name: str, keep: int = KEPT_VERSIONS) -> None:
        self.client, self.model_name, self.keep = client, model_name, keep
        self._loaded: OrderedDict[str, LoadedScorer] = OrderedDict()
        self._failed: dict[str, tuple[float, str]] = {}
        #: Guards the two dicts; each version has its own lock for its download, so a slow
        #: one holds up only the requests that need that version.
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, version: str) -> LoadedScorer:
        """Version `version`; raises `VersionUnavailable` saying why it cannot be had."""
        with self._lock:
            loading = self._loading.setdefault(version, threading.Lock())
        with loading:  # two requests for one version download it once
            with self._lock:
                if version in self._loaded:
                    self._loaded.move_to_end(version)
                    return self._loaded[version]
                failed = self._failed.get(version)
                if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER_SECONDS:
                    raise VersionUnavailable(failed[1])
            loaded = self._load(version)
            with self._lock:
                self._loaded[version] = loaded
                while len(self._loaded) > self.keep:
                    self._loaded.popitem(last=False)
            return loaded

    def _load(self, version: str) -> LoadedScorer:
        try:
            return load_scorer(self.client, self.model_name, version)
        except (ScorerFormatError, OSError, MlflowException) as exc:
            problem = f"{self.model_name} version {version} cannot be loaded: {exc}"
            with self._lock:
                self._failed[version] = (time.monotonic(), problem)
            raise VersionUnavailable(problem) from exc
