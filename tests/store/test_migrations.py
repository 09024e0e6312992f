"""Migrations build exactly the tables the models describe, and re-running them changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, MetaData, String, Table, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from store.db import MIGRATIONS_DIR, migrate
from store.repository import latest_import, upsert_leads
from store.tables import Base, Lead

WHEN = datetime(2026, 3, 1, tzinfo=UTC)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine)
    return engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def downgrade(engine: Engine, revision: str) -> None:
    """Take the store back to an earlier revision, as a store made by an older leadloop is."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def schema_differences(engine: Engine) -> list:
    """What autogenerate would write for the next migration (nothing, if they match)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_migrations_match_the_models(sessions: sessionmaker[Session]) -> None:
    """A model change without its migration would only show up in production."""
    engine = engine_of(sessions)
    assert schema_differences(engine) == []
    assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}


def test_database_is_at_the_head_revision(sessions: sessionmaker[Session]) -> None:
    """The store records which migration it is at, so upgrades know where to start."""
    with engine_of(sessions).connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert current is not None
    assert current == head_revision()


def test_a_store_made_before_imports_were_recorded_upgrades_with_its_leads(
    sessions: sessionmaker[Session],
) -> None:
    """Stores created by revision 0002 get the `imports` table, empty, and keep their leads."""
    engine = engine_of(sessions)
    downgrade(engine, "0002")
    assert "imports" not in inspect(engine).get_table_names()
    row = {
        "lead_id": "older",
        "created_at": WHEN,
        "source": None,
        "lead_type": None,
        "attributes": {"visits": 1},
        "pii_hashes": {},
        "updated_at": WHEN,
    }
    # Written as that revision's code would: today's upsert names columns added since.
    old_leads = Table("leads", MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(old_leads.insert(), [row])
    migrate(engine)
    assert schema_differences(engine) == []
    with sessions() as session:
        assert latest_import(session) is None
        kept = session.get(Lead, "older")
        assert kept is not None and kept.attributes == {"visits": 1}


def test_migrating_again_is_a_no_op(sessions: sessionmaker[Session]) -> None:
    """Every start-up migrates; a store already at head must keep its schema and its rows."""
    engine = engine_of(sessions)
    row = {
        "lead_id": "kept",
        "created_at": WHEN,
        "source": "webinar",
        "lead_type": None,
        "attributes": {"page_views": 3},
        "pii_hashes": {},
        "updated_at": WHEN,
    }
    with sessions.begin() as session:
        upsert_leads(session, [row])
    migrate(engine)
    migrate(engine)
    assert schema_differences(engine) == []
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 1
        kept = session.get(Lead, "kept")
        assert kept is not None and kept.attributes == {"page_views": 3}
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()


def test_the_comparison_would_notice_a_missing_migration(sessions: sessionmaker[Session]) -> None:
    """Guard against a vacuous check: a column added only to the models must show up."""
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["leads"].append_column(Column("score_bucket", String(10)))
    with engine_of(sessions).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), changed)
    assert [(d[0], d[3].name) for d in differences] == [("add_column", "score_bucket")]
