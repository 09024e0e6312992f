"""Shared fixtures: real SQLite and PostgreSQL stores, a real MLflow store, a trained model.

Nothing here is mocked. PostgreSQL tests skip with the reason when no server answers, except
under `CI=true`, where an unreachable server fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from features.schema import DEMO_SCHEMA_PATH, LeadSchema, load_schema
from store.db import make_engine, migrate
from store.demo_funnel import DemoFunnel, generate_demo_funnel
from tests.support import NOW, TrainedSetup, open_store, train_setup
from training.dataset import AS_OF, shuffle_outcomes_before
from training.pipeline import TrainedCandidate, TrainingConfig, train_candidate

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SMALL_FUNNEL_LEADS = 6_000
TABLES = ("api_keys", "erased_leads", "imports", "score_snapshots", "outcome_events", "leads")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A developer's own LEADLOOP_* settings must not leak into the tests, nor a command run
    by a test make a PII key in the project's own var/."""
    for name in list(os.environ):
        if name.startswith("LEADLOOP_") and not name.startswith("LEADLOOP_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LEADLOOP_PII_KEY_FILE", str(tmp_path / "pii.key"))


@pytest.fixture(scope="session")
def demo_schema() -> LeadSchema:
    return load_schema(DEMO_SCHEMA_PATH)


@pytest.fixture(scope="session")
def small_funnel() -> DemoFunnel:
    return generate_demo_funnel(SMALL_FUNNEL_LEADS, seed=1)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database of its own for this test session on the PostgreSQL server, dropped at the end."""
    base = make_url(os.environ.get("LEADLOOP_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    admin = create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = f"PostgreSQL not reachable at {base.render_as_string()}: {exc.orig}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires PostgreSQL: {reason}")
        pytest.skip(reason)
    name = f"leadloop_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = request.getfixturevalue("postgres_server_url")
    engine = make_engine(url)
    migrate(engine)
    if request.param == "postgresql":
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    factory = open_store(database_url)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory, small_funnel: DemoFunnel, demo_schema: LeadSchema
) -> Iterator[TrainedSetup]:
    """One real model, trained on the small demo funnel and registered in a real MLflow store:
    every test that needs "a trained model" uses this one."""
    setup = train_setup(tmp_path_factory.mktemp("trained"), small_funnel, demo_schema)
    yield setup
    setup.close()


@pytest.fixture(scope="session")
def noisy_candidate(trained: TrainedSetup, demo_schema: LeadSchema) -> TrainedCandidate:
    """A challenger that learnt from noise: the same leads with their outcomes shuffled among
    those older than the holdout, judged on the true holdout. Its own fit (the only way to get
    a worse model honestly), shared by every test of the promotion gate."""
    cutoff = trained.run.candidate.holdout[AS_OF].min()
    return train_candidate(
        shuffle_outcomes_before(trained.frames, cutoff), demo_schema, TrainingConfig(), NOW
    )
