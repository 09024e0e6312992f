"""What every command shares: the consoles, reading the settings, opening the store and the
registry, and turning known errors into a message and exit code 2."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from features.schema import SchemaError
from serving.settings import Settings
from store.db import StoreUrlError, make_engine, migrate, session_factory
from store.export_reader import ImportFileError
from training.split import NotEnoughDataError

if TYPE_CHECKING:  # importing MLflow takes seconds: only the commands that need it do
    from mlflow import MlflowClient

#: Width of tables written to a pipe or a file (Rich would assume 80 columns there).
PIPE_WIDTH = 160


def _console(stderr: bool = False) -> Console:
    """A console that never breaks a line of text (a path printed into a pipe stays whole; a
    terminal wraps long lines itself), and lays tables out wider than 80 columns in a pipe."""
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


err = _console(stderr=True)
out = _console()


class Failure(typer.Exit):
    """Exit code 2, its message already said on stderr and kept for `--json` output."""

    def __init__(self, message: str) -> None:
        super().__init__(code=2)
        self.message = message


def fail(message: str) -> Failure:
    """Say what is wrong on stderr; raise the result to exit with code 2."""
    # Escaped: field names and paths may hold brackets, which Rich would read as markup.
    err.print(f"[bold red]error:[/] {escape(message)}")
    return Failure(message)


@contextmanager
def json_failures(enabled: bool) -> Iterator[None]:
    """Under `--json`, a failure also prints one JSON object on stdout: a script that parses
    stdout gets the reason instead of nothing."""
    try:
        yield
    except Failure as failure:
        if enabled:
            print(json.dumps({"error": failure.message, "exit_code": failure.exit_code}))
        raise


def start() -> Settings:
    """Send logs to stderr (stdout is for results), quiet MLflow's, and read the settings.

    Every command calls it first, before its slow imports: a bad setting is refused at once.
    """
    logging.basicConfig(level=logging.WARNING, handlers=[_log_handler()], force=True)
    # MLflow logs its own INFO lines (database set-up, registered versions) on a handler of its
    # own; they are not results. The variable covers an import still to come, the level one
    # already made.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"])
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise fail(f"invalid settings: {problems}") from None


def _log_handler() -> logging.Handler:
    """Rich's layout on a terminal; one plain line per record in a pipe or a log file (Rich
    would break a long message at its console width there)."""
    if err.is_terminal:
        handler: logging.Handler = RichHandler(console=err, show_path=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    return handler


def _variable(loc: tuple[int | str, ...]) -> str:
    """The environment variable a settings error is about (an alias carries the prefix)."""
    name = "_".join(map(str, loc)).upper()
    return name if name.startswith("LEADLOOP_") else f"LEADLOOP_{name or 'SETTINGS'}"


def now() -> datetime:
    return datetime.now(UTC)


def user() -> str:
    """Who runs the command, for the registry's record of hand-made decisions."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        return "unknown"


def open_store(settings: Settings) -> sessionmaker[Session]:
    """The store at LEADLOOP_DATABASE_URL, migrated to the latest schema."""
    engine = make_engine(settings.database_url, create_folder=settings.store_folder_made)
    migrate(engine)
    return session_factory(engine)


def open_registry(settings: Settings) -> MlflowClient:
    """The MLflow store at LEADLOOP_MLFLOW_TRACKING_URI (runs and registered models)."""
    from models.registry import mlflow_client

    return mlflow_client(settings.mlflow_tracking_uri)


@contextmanager
def reported_errors(*also: type[Exception]) -> Iterator[None]:
    """Turn errors of configuration and of reachable services (and `also`, a command's own
    domain errors) into a message and exit code 2."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (SchemaError, NotEnoughDataError, ImportFileError, StoreUrlError, *also) as exc:
        raise fail(str(exc)) from None
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(f"the store at LEADLOOP_DATABASE_URL failed: {detail}") from None
    except MlflowException as exc:
        raise fail(f"MLflow at LEADLOOP_MLFLOW_TRACKING_URI failed: {exc.message}") from None
