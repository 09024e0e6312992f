"""Engines, sessions and migrations: the store's connection to SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for `postgresql://` URLs (SQLAlchemy would default to psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


#: The databases leadloop's migrations and upserts are written for.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class StoreUrlError(ValueError):
    """A database URL leadloop cannot open: not a URL, another database, or a missing folder."""


def make_engine(url: str, create_folder: bool = False) -> Engine:
    """Create an engine, with pragmas for a shared SQLite file. A SQLite file's folder must
    exist unless `create_folder` (the default store under `var/`): a typo in a path should
    not quietly start an empty store somewhere else."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:  # the URL is not echoed: it may hold a password
        raise StoreUrlError("not a database URL (sqlite:///path or postgresql://...)") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StoreUrlError(
            f"{backend!r} is not supported: leadloop stores leads in SQLite or PostgreSQL"
        )
    if backend != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        if create_folder:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise StoreUrlError(
                f"the folder {folder} of the SQLite store does not exist: create it, or correct "
                "LEADLOOP_DATABASE_URL"
            )
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # WAL lets the API write while `leadloop train` reads; foreign keys are off by default.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Bring the database schema to the latest Alembic revision."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
