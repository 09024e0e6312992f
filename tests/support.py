"""Helpers the tests share: settings of a throw-away embedded set-up, seeding, training, and
clients of the API that send a key."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from mlflow import MlflowClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from features.schema import LeadSchema, load_schema
from models.registry import load_champion, mlflow_client
from reports.funnel_plan import Target
from reports.quality_page import log_quality_page
from reports.service import ReportRun, write_reports
from serving.app import create_app
from serving.server import uvicorn_config
from serving.settings import Settings
from store.api_keys import create_key
from store.db import make_engine, migrate, session_factory
from store.demo_funnel import DemoFunnel, load_demo_funnel
from store.repository import TrainingFrames, training_frames
from training.pipeline import TrainedCandidate, TrainingConfig
from training.service import TrainingRun, judge, register_run, train_and_register
from training.tracking import TrackingTarget

#: The tests' "now": just after the demo funnel's last day.
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PII_KEY = b"test-pii-key"
CARD_KEY = b"test-card-key-of-at-least-32-bytes"


@functools.cache
def _empty_mlflow_store() -> Path:
    """One empty MLflow SQLite store, created by MLflow itself, once per test session."""
    folder = Path(tempfile.mkdtemp(prefix="leadloop-mlflow-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    mlflow_client(f"sqlite:///{folder}/mlflow.db")  # MLflow creates and migrates its tables
    return folder / "mlflow.db"


def empty_mlflow_store(directory: Path) -> str:
    """The tracking URI of a new, empty MLflow store in `directory`.

    A copy of one MLflow made earlier in the session: creating its tables costs MLflow 2-3 s
    each time, copying the file a millisecond, and the store is the same.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_empty_mlflow_store(), directory / "mlflow.db")
    return f"sqlite:///{directory}/mlflow.db"


def make_settings(directory: Path, database_url: str | None = None) -> Settings:
    """Settings of an embedded set-up inside `directory`, with an empty MLflow store."""
    return Settings(
        env="test",
        database_url=database_url or f"sqlite:///{directory}/leadloop.db",
        mlflow_tracking_uri=empty_mlflow_store(directory),
        mlflow_artifact_root=str(directory / "mlartifacts"),
        reports_dir=directory / "reports",
        pii_key=PII_KEY.decode(),
        card_key=CARD_KEY.decode(),
        # Tests send hundreds of requests a second with one key: the limit's own tests set one.
        rate_limit_per_minute=0,
    )


def open_store(url: str) -> sessionmaker[Session]:
    engine = make_engine(url)
    migrate(engine)
    return session_factory(engine)


def api_key(settings: Settings, *scopes: str) -> str:
    """A new API key with `scopes` (default: admin) in `settings`' store."""
    sessions = open_store(settings.database_url)
    try:
        with sessions.begin() as session:
            name = f"test-{uuid.uuid4().hex[:12]}"
            return create_key(session, name, scopes or ["admin"], NOW)
    finally:
        sessions.kw["bind"].dispose()


def bearer(key: str) -> dict[str, str]:
    """The header that presents `key`."""
    return {"Authorization": f"Bearer {key}"}


def api_client(settings: Settings, **options: Any) -> TestClient:
    """A client of the API for `settings` that sends an admin key with every request (use it
    as a context manager, so the app's lifespan runs)."""
    return TestClient(create_app(settings), headers=bearer(api_key(settings)), **options)


@contextmanager
def running_server(settings: Settings) -> Iterator[str]:
    """The app for `settings` under `leadloop serve`'s uvicorn configuration on a free loopback
    port, for clients that need a real server (a browser); yields its address."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn_config(create_app(settings), settings, "127.0.0.1", 0)
    config.log_level = "warning"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()


def stored_scores(client: TestClient) -> None:
    """Wait until the scores `client`'s app answered are in the store (they are written after
    the answer): for a test that reads the store itself rather than through the API."""
    assert client.app.state.leadloop.writer.flush(timeout=30)  # type: ignore[attr-defined]


def seed(sessions: sessionmaker[Session], funnel: DemoFunnel, schema: LeadSchema) -> None:
    with sessions.begin() as session:
        load_demo_funnel(session, funnel, schema, PII_KEY, NOW)


def train(settings: Settings, sessions: sessionmaker[Session], now: datetime = NOW) -> TrainingRun:
    """`leadloop train` on `settings`' MLflow store, as the CLI wires it."""

    return train_and_register(
        sessions,
        mlflow_client(settings.mlflow_tracking_uri),
        load_schema(settings.schema_path),
        settings.tracking_target(),
        now,
        settings.training_config(),
    )


def register_candidate(
    client: MlflowClient,
    target: TrackingTarget,
    candidate: TrainedCandidate,
    config: TrainingConfig | None = None,
) -> TrainingRun:
    """What `train_and_register` does after fitting, for a candidate fitted earlier: judge it
    against the registry's champion, refit it, log it, register it, move the aliases."""
    config = config or TrainingConfig()
    champion = load_champion(client, target.model_name)
    result = judge(dataclasses.replace(candidate, served=None), champion, config)
    return register_run(client, target, result, champion, NOW, config)


def report(
    settings: Settings,
    sessions: sessionmaker[Session],
    out: Path,
    as_of: datetime | None = None,
    target: Target | None = None,
) -> ReportRun:
    """`leadloop report` on `settings`' store and registry, as the CLI wires it."""

    return write_reports(
        sessions,
        mlflow_client(settings.mlflow_tracking_uri),
        settings.model_name,
        load_schema(settings.schema_path),
        out,
        as_of,
        target,
        settings.report_config(),
    )


def chromium() -> str:
    """The system's headless Chromium; the test skips without one, except under CI=true."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "no chromium here (`make browser` installs Debian's where apt is available)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires the browser tests: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class TrainedSetup:
    settings: Settings
    sessions: sessionmaker[Session]
    funnel: DemoFunnel
    #: The store as the run read it; later tests post to the same store, so a test that needs
    #: the run's own data reads it here, not from the store.
    frames: TrainingFrames
    run: TrainingRun
    #: Where the run's model-quality page was logged (`leadloop train` prints it).
    quality_page: str

    @property
    def client(self) -> MlflowClient:
        return mlflow_client(self.settings.mlflow_tracking_uri)

    def close(self) -> None:
        """Return the store's pooled connections (an open one at exit is a ResourceWarning)."""
        self.sessions.kw["bind"].dispose()


def train_setup(
    directory: Path, funnel: DemoFunnel, schema: LeadSchema, database_url: str | None = None
) -> TrainedSetup:
    """A store seeded with `funnel`, trained once, its champion registered in MLflow."""
    settings = make_settings(directory, database_url)
    sessions = open_store(settings.database_url)
    seed(sessions, funnel, schema)
    with sessions() as session:
        frames = training_frames(session)
    run = train(settings, sessions)
    page = log_quality_page(mlflow_client(settings.mlflow_tracking_uri), run)
    return TrainedSetup(settings, sessions, funnel, frames, run, page)
