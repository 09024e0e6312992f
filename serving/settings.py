"""leadloop's one `Settings`: read from `LEADLOOP_*` variables at the edge and passed down."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.schema import DEMO_SCHEMA_PATH

if TYPE_CHECKING:  # the services import MLflow and pandas: only the commands that use them do
    from reports.service import ReportConfig
    from training.pipeline import TrainingConfig
    from training.tracking import TrackingTarget

log = logging.getLogger("leadloop")


class Settings(BaseSettings):
    """Defaults give the embedded set-up: SQLite store and MLflow under `var/`."""

    model_config = SettingsConfigDict(env_prefix="LEADLOOP_", extra="ignore", populate_by_name=True)

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///var/leadloop.db"
    mlflow_tracking_uri: str = "sqlite:///var/mlflow.db"
    #: Where new MLflow experiments keep their artifacts (a path or any MLflow artifact URI).
    mlflow_artifact_root: str = "var/mlartifacts"
    mlflow_experiment: str = "leadloop"
    model_name: str = "lead-scoring"
    schema_path: Path = Field(default=DEMO_SCHEMA_PATH, validation_alias="LEADLOOP_SCHEMA")
    #: Fewest won, and fewest lost or disqualified, outcomes `leadloop train` accepts.
    min_outcomes: int = Field(default=120, ge=1)
    #: Leads sales can work a month: grade A is the best that many (unset: twice the base rate).
    sales_capacity: int | None = Field(default=None, ge=1)
    #: Refit the gate's choice on every closed lead before registering it.
    refit: bool = True
    #: Where `leadloop report` writes and the API serves the reports and the dashboard.
    reports_dir: Path = Path("var/reports")
    #: Hours within which sales should contact a handed-over lead (the follow-up SLA).
    sla_hours: float = Field(default=24.0, gt=0)
    #: Days of recent leads the drift report compares with the training window.
    drift_days: int = Field(default=30, ge=1)
    #: Secret for the keyed hashes that replace PII in the store; unset, the key in
    #: `pii_key_file` (made on first use, readable by its owner only).
    pii_key: SecretStr | None = None
    pii_key_file: Path = Path("var/pii.key")

    #: Seconds a running service remembers a valid API key instead of asking the store on each
    #: request: a revoked key is refused within this time (0: ask the store every time).
    key_cache_seconds: float = Field(default=5.0, ge=0)

    # Limits of the HTTP API (`leadloop serve`).
    #: Largest request body (bytes): 2 MiB is 1,000 leads of 2 KB, five times the example's.
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
    #: Seconds from a request's headers to the last byte of its body.
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Seconds from a new connection (or a kept-alive one's next request) to its last header.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Largest request line and headers (bytes).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    #: Seconds an idle kept-alive connection stays open.
    keep_alive_seconds: int = Field(default=5, ge=1)
    #: Open connections and requests in progress before new requests get 503.
    max_connections: int = Field(default=100, ge=1)
    #: Requests a minute each API key may make on average (0: no limit)...
    rate_limit_per_minute: int = Field(default=600, ge=0)
    #: ...and at once, after a pause.
    rate_limit_burst: int = Field(default=60, ge=1)
    #: Seconds between two looks at the registry's champion alias (a moved alias is served
    #: without a restart).
    model_poll_seconds: float = Field(default=30.0, gt=0)
    #: Seconds start-up waits for the registry before answering "not ready" and looking on.
    model_load_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Seconds a stopping service (SIGTERM) gives requests in progress to finish.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    #: Scored leads queued for the store, written in batches after the answer (0: each request
    #: writes its own before it is answered). A SIGKILL loses what is queued; SIGTERM does not.
    snapshot_queue: int = Field(default=10_000, ge=0)
    #: Seconds the writer waits for more scores to store them in one transaction.
    snapshot_linger_seconds: float = Field(default=0.05, ge=0, le=5)
    #: Seconds a request waits for room in the queue, or for the store, before a 503.
    store_wait_seconds: float = Field(default=10.0, gt=0)

    @property
    def store_folder_made(self) -> bool:
        """Whether opening the store may create its SQLite folder: only the default `var/`, so
        that a mistyped path is an error, not a new empty store."""
        return self.database_url == type(self).model_fields["database_url"].default

    @cached_property
    def pii_key_bytes(self) -> bytes:
        """`pii_key`, or the key in `pii_key_file`, made there on first use."""
        if self.pii_key is not None:
            return self.pii_key.get_secret_value().encode("utf-8")
        return key_in_file(self.pii_key_file)

    @property
    def artifact_location(self) -> str:
        """The artifact root as a URI (MLflow would otherwise use ./mlruns of the caller)."""
        root = self.mlflow_artifact_root
        return root if "://" in root else Path(root).resolve().as_uri()

    def tracking_target(self) -> TrackingTarget:
        """Where `train` logs its runs and registers its models."""
        from training.tracking import TrackingTarget

        return TrackingTarget(self.model_name, self.mlflow_experiment, self.artifact_location)

    def training_config(self) -> TrainingConfig:
        from training.pipeline import TrainingConfig

        return TrainingConfig(
            min_outcomes=self.min_outcomes, sales_capacity=self.sales_capacity, refit=self.refit
        )

    def report_config(self) -> ReportConfig:
        from reports.service import ReportConfig

        return ReportConfig(self.sla_hours, self.drift_days, self.sales_capacity)


def key_in_file(path: Path) -> bytes:
    """The secret in `path`; a new random one (256 bits), written readable by its owner only,
    when there is none. Two processes starting at once agree: the second reads the first's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, written = tempfile.mkstemp(dir=path.parent, prefix=".pii-key-")  # mode 600
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(written, path)  # whole or not at all, and never over another's key
        except FileExistsError:
            pass
        finally:
            os.unlink(written)
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by others than its owner: chmod 600 it", path)
    return path.read_bytes().strip()
