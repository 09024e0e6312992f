"""leadloop's one `Settings`: read from `LEADLOOP_*` variables at the edge and passed down."""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from functools import cached_property
from ipaddress import ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BeforeValidator,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from features.pii import SHARED_EMAIL_DOMAINS
from features.schema import DEMO_SCHEMA_PATH
from reports import DEFAULT_FALSE_ALARM_RATE
from serving.card_links import MIN_KEY_BYTES

if TYPE_CHECKING:  # the services import MLflow and pandas: only the commands that use them do
    from reports.service import ReportConfig
    from store.webhook_outbox import WebhookRules
    from training.pipeline import TrainingConfig
    from training.tracking import TrackingTarget

log = logging.getLogger("leadloop")

#: A CSP source a frame may come from: an origin, a subdomain wildcard, or 'self'. Nothing
#: else, so no value can end the header's directive and add another.
Origin = Annotated[
    str, StringConstraints(pattern=r"^('self'|https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?)$")
]


def _crm_mapping_checked(path: Path) -> Path:
    """`path`, if it holds a valid CRM mapping: a wrong file stops every command at once."""
    from serving.crm.mapping import load_crm_mapping  # only when a mapping is set

    load_crm_mapping(path)
    return path


def _address_only(url: AnyHttpUrl) -> AnyHttpUrl:
    """A service's address: links are appended to it, so it holds no query or fragment."""
    if url.query or url.fragment:
        raise ValueError("the service's address takes no query (?...) or fragment (#...)")
    return url


def _listed(value: Any) -> Any:
    """A list setting as written in the environment: JSON (`["a", "b"]`) or between commas
    (`a,b`); pydantic then checks each item."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)  # a JSON error is a ValueError: named with the variable
    return [part.strip() for part in text.split(",") if part.strip()]


T = TypeVar("T")
#: A list setting read by `_listed`, not by pydantic-settings' JSON-only decoding (which
#: fails with a traceback on `a,b`).
Listed = Annotated[T, NoDecode, BeforeValidator(_listed)]


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
    #: How rarely, at most, chance alone may name a stable source as having stopped converting
    #: at one report (the change detection's threshold is ln(1 / it)).
    change_false_alarm_rate: float = Field(default=DEFAULT_FALSE_ALARM_RATE, ge=1e-12, lt=0.5)
    #: Secret for the keyed hashes that replace PII in the store; unset, the key in
    #: `pii_key_file` (made on first use, readable by its owner only).
    pii_key: SecretStr | None = None
    pii_key_file: Path = Path("var/pii.key")

    # The lead card a CRM frames (`/v1/leads/{id}/card`).
    #: Secret that signs card links (32 characters at least); unset, the key in
    #: `card_key_file` (made on first use). Several machines serving one store share it.
    card_key: SecretStr | None = Field(default=None, min_length=32)
    card_key_file: Path = Path("var/card.key")
    #: Seconds a card link stays valid, unless a shorter time is asked for.
    card_link_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    #: Origins allowed to frame the card (`Content-Security-Policy: frame-ancestors`), e.g.
    #: `["https://*.lightning.force.com", "https://app.hubspot.com"]`; none: no frame may.
    card_frame_ancestors: Listed[list[Origin]] = []
    #: The service's address as the CRM reaches it, for absolute card links (unset: the
    #: address the request came to).
    public_url: Annotated[AnyHttpUrl, AfterValidator(_address_only)] | None = None

    # Webhooks out to the CRM when a lead's grade changes or its score crosses a threshold.
    #: Where they are posted (unset: none is sent, and none is owed: the store writes nothing).
    #: https, but to a loopback address or with `env=development`: the body holds lead data
    #: and a card link.
    webhook_url: AnyHttpUrl | None = None
    #: The secret each webhook is signed with (HMAC-SHA256), at least 16 characters; required
    #: with a URL: a receiver must be able to tell leadloop's posts from anyone's.
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    #: The events sent: `grade_changed`, `score_crossed` (of a threshold below).
    webhook_events: Listed[list[Literal["grade_changed", "score_crossed"]]] = Field(
        default=["grade_changed", "score_crossed"], min_length=1
    )
    #: Scores whose crossing, up or down, fires `score_crossed`: 70 fires on 69 -> 70 and on
    #: 70 -> 69 (0 could never be crossed).
    webhook_thresholds: Listed[list[Annotated[int, Field(ge=1, le=100)]]] = []
    #: Attempts at a delivery before it is given up (`failed`): with the waits below, a day.
    webhook_max_attempts: int = Field(default=24, ge=1, le=1000)
    #: Seconds between a failed attempt and the next, the last repeated; each stretched or
    #: shrunk by up to 20% at random, so that a receiver back up is not hit by all at once.
    webhook_backoff_seconds: Listed[list[Annotated[float, Field(gt=0, le=24 * 3600)]]] = Field(
        default=[10, 30, 120, 600, 1800, 3600], min_length=1
    )
    #: Seconds the receiver has to answer one delivery.
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: Seconds between two looks for deliveries due.
    webhook_poll_seconds: float = Field(default=2.0, gt=0, le=600)

    # Outcomes straight from the CRM (`POST /v1/crm/hubspot`, `POST /v1/crm/salesforce`).
    #: The YAML file that maps CRM stages onto outcomes (`examples/crm/stages.yaml`), checked
    #: when the settings are read; unset, both routes answer 404 saying how to set it.
    crm_mapping: Annotated[Path, AfterValidator(_crm_mapping_checked)] | None = None
    #: The client secret of the HubSpot app a workflow's webhook is signed with: set, a HubSpot
    #: request without a valid, recent X-HubSpot-Signature-v3 is refused (unset: unchecked).
    hubspot_client_secret: SecretStr | None = None
    #: The Salesforce organization (its 15- or 18-character id) whose outbound messages are
    #: taken; unset, any organization's (the API key alone guards the route).
    salesforce_organization_id: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")] | None
    ) = None

    #: E-mail domains many people share (free mail): a lead disqualified at one says nothing
    #: of the next lead there, so they are never flagged as a disqualified company.
    shared_email_domains: Listed[list[str]] = list(SHARED_EMAIL_DOMAINS)
    #: Seconds between two looks for new closing outcomes (the disqualified leads and
    #: domains a score is flagged with are reloaded when there are).
    disqualified_poll_seconds: float = Field(default=2.0, gt=0)

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

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_private(
        cls, url: AnyHttpUrl | None, info: ValidationInfo
    ) -> AnyHttpUrl | None:
        if (
            url is not None
            and url.scheme == "http"
            and info.data.get("env") != "development"
            and not _loopback(url.host or "")
        ):
            raise ValueError(
                "plain http would let anyone on the way read the leads' scores and card links: "
                "use https (http is for a loopback address, or LEADLOOP_ENV=development)"
            )
        return url

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_signed(cls, secret: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("webhook_url") is not None and (
            secret is None or len(secret.get_secret_value()) < 16
        ):
            raise ValueError(
                "a webhook URL needs a secret of at least 16 characters to sign with, e.g. "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        return secret

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

    @cached_property
    def card_key_bytes(self) -> bytes:
        """`card_key`, or the key in `card_key_file`, made there on first use (its folder too,
        for the default's `var/` only). Raises `KeyFileError` for a file that cannot serve."""
        if self.card_key is not None:
            return self.card_key.get_secret_value().encode("utf-8")
        default = self.card_key_file == type(self).model_fields["card_key_file"].default
        key = key_in_file(self.card_key_file, create_folder=default)
        if len(key) < MIN_KEY_BYTES:
            raise KeyFileError(
                f"{self.card_key_file} holds a key of {len(key)} bytes: card links need "
                f"{MIN_KEY_BYTES} at least (delete the file to have a new key made)"
            )
        return key

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

        return ReportConfig(
            self.sla_hours, self.drift_days, self.sales_capacity, self.change_false_alarm_rate
        )

    def webhook_rules(self) -> WebhookRules | None:
        """The score changes that owe the CRM a webhook; None without a webhook URL."""
        from store.webhook_outbox import WebhookEvent, WebhookRules

        if self.webhook_url is None:
            return None
        return WebhookRules(
            frozenset(map(WebhookEvent, self.webhook_events)), tuple(self.webhook_thresholds)
        )


def _loopback(host: str) -> bool:
    """Whether `host` names this machine: `localhost` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name
        return False


class KeyFileError(ValueError):
    """A key file that cannot serve: a folder, in a folder that does not exist, or too short."""


def key_in_file(path: Path, create_folder: bool = True) -> bytes:
    """The secret in `path`; a new random one (256 bits), written readable by its owner only,
    when there is none. Two processes starting at once agree: the second reads the first's.
    Without `create_folder`, a missing folder is an error: a mistyped path must not quietly
    make a new key that no other process shares."""
    if path.is_dir():
        raise KeyFileError(f"{path} is a folder: give the key file's path")
    if not path.exists():
        if not create_folder and not path.parent.is_dir():
            raise KeyFileError(f"{path.parent} does not exist: is the key file's path mistyped?")
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, written = tempfile.mkstemp(dir=path.parent, prefix=".key-")  # mode 600
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
