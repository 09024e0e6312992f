"""Helpers the tests share: settings of a throw-away embedded set-up, seeding, training."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from serving.settings import Settings
from store.db import make_engine, migrate, session_factory
from store.demo_funnel import DemoFunnel, load_demo_funnel
from training.run import TrainingRun, train_and_register

#: The tests' "now": just after the demo funnel's last day.
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PII_KEY = b"test-pii-key"


def make_settings(directory: Path, database_url: str | None = None) -> Settings:
    """Settings of an embedded set-up inside `directory`."""
    return Settings(
        env="test",
        database_url=database_url or f"sqlite:///{directory}/leadloop.db",
        mlflow_tracking_uri=f"sqlite:///{directory}/mlflow.db",
        mlflow_artifact_root=str(directory / "mlartifacts"),
        reports_dir=directory / "reports",
        pii_key=PII_KEY.decode(),
    )


def open_store(url: str) -> sessionmaker[Session]:
    engine = make_engine(url)
    migrate(engine)
    return session_factory(engine)


def seed(sessions: sessionmaker[Session], funnel: DemoFunnel, schema: LeadSchema) -> None:
    with sessions.begin() as session:
        load_demo_funnel(session, funnel, schema, PII_KEY, NOW)


@dataclass(frozen=True)
class TrainedSetup:
    settings: Settings
    sessions: sessionmaker[Session]
    funnel: DemoFunnel
    run: TrainingRun

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
    run = train_and_register(settings, sessions, NOW)
    return TrainedSetup(settings, sessions, funnel, run)
