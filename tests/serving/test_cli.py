"""The `leadloop` command line.

The quick-start path runs the installed console script in a subprocess, as a user would; the
refusals run the same commands in-process (`CliRunner`), which checks the same code without
paying for a new interpreter each time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner, Result

from models.registry import CHAMPION, alias_version, mlflow_client
from serving.cli import app
from serving.settings import Settings
from store.tables import Lead
from tests.support import empty_mlflow_store

LEADLOOP = Path(sys.executable).parent / "leadloop"
METRIC_NAMES = {"roc_auc", "pr_auc", "log_loss", "brier", "lift_at_10", "ece"}
DEMO_LEADS = 3_000
COMMANDS = ("demo-data", "import", "train", "promote", "rollback", "report", "serve")


def store_env(directory: Path, **extra: str) -> dict[str, str]:
    """An environment naming only a throw-away store in `directory` (no developer LEADLOOP_*)."""
    return {
        "LEADLOOP_DATABASE_URL": f"sqlite:///{directory}/leadloop.db",
        "LEADLOOP_MLFLOW_TRACKING_URI": empty_mlflow_store(directory),
        "LEADLOOP_MLFLOW_ARTIFACT_ROOT": str(directory / "mlartifacts"),
        **extra,
    }


def leadloop(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; `cwd` keeps stray relative outputs in the temp dir."""
    assert LEADLOOP.exists(), f"console script not installed at {LEADLOOP}"
    return subprocess.run(
        [str(LEADLOOP), *args],
        env={"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def invoke(env: dict[str, str], *args: str) -> Result:
    """The same command, in this process."""
    return CliRunner().invoke(app, list(args), env=env)


def one_line(text: str) -> str:
    """Compare messages with whitespace collapsed."""
    return " ".join(text.split())


def count_leads(directory: Path) -> int:
    engine = create_engine(f"sqlite:///{directory}/leadloop.db")
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Lead.__table__)) or 0
    finally:
        engine.dispose()


def test_help_lists_every_command_without_type_placeholders(tmp_path: Path) -> None:
    """The README's commands must all be reachable from `leadloop --help`."""
    result = leadloop(store_env(tmp_path), tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout
    placeholders = {"<str>", "<bool>", "<int>", "<path>", "<list[str]>", "TEXT", "INTEGER"}
    for command in COMMANDS:
        options = [
            line.split()
            for line in invoke({}, command, "--help").output.splitlines()
            if line.lstrip().startswith("--")
        ]
        assert options and not placeholders & {word for line in options for word in line}


def test_version() -> None:
    result = invoke({}, "--version")
    assert result.exit_code == 0 and result.output.strip() == f"leadloop {version('leadloop')}"


def test_demo_data_then_train(tmp_path: Path) -> None:
    """The quick-start path: fill an empty store once, refuse to refill it, then train on it."""
    env = store_env(tmp_path)

    first = leadloop(env, tmp_path, "demo-data", "--leads", str(DEMO_LEADS), "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert count_leads(tmp_path) == DEMO_LEADS

    again = invoke(env, "demo-data", "--leads", str(DEMO_LEADS), "--seed", "3")
    assert again.exit_code == 2
    assert "already holds 3,000 leads" in one_line(again.output)

    if_empty = invoke(env, "demo-data", "--leads", "500", "--if-empty")
    assert if_empty.exit_code == 0, if_empty.output
    assert "no demo data added" in one_line(if_empty.output)
    assert count_leads(tmp_path) == DEMO_LEADS

    # Its own fit: the console script's `train`, exactly as `make train` runs it.
    trained = leadloop(env, tmp_path, "train", "--json")
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.count("\n") == 1, f"stdout is not one JSON line: {trained.stdout!r}"
    assert "INFO" not in trained.stderr, "MLflow's INFO lines are not the user's business"
    summary = json.loads(trained.stdout)
    assert isinstance(summary, dict)
    required = {"run_id", "model_version", "promoted", "metrics", "n_train", "n_holdout"}
    assert required | {"leaks", "time_proxies", "refit_leads"} <= set(summary)
    assert summary["refit_leads"] == summary["n_train"] + summary["n_holdout"]
    assert 0 <= summary["recalibration_leads"] <= summary["n_holdout"]
    assert summary["model_version"] == "1"
    assert summary["promoted"] is True
    assert set(summary["metrics"]) == METRIC_NAMES
    assert summary["n_train"] > 0 and summary["n_holdout"] > 0
    assert summary["n_train"] + summary["n_holdout"] <= DEMO_LEADS
    assert Path(summary["quality_report"].removeprefix("file://")).is_file()

    champion = alias_version(
        mlflow_client(env["LEADLOOP_MLFLOW_TRACKING_URI"]), "lead-scoring", CHAMPION
    )
    assert champion is not None
    assert (str(champion.version), champion.run_id) == ("1", summary["run_id"])


def test_train_on_an_empty_store_fails_cleanly(tmp_path: Path) -> None:
    """A first-time user who forgot `demo-data` gets a reason, not a stack trace."""
    result = invoke(store_env(tmp_path), "train")
    assert result.exit_code == 2
    assert "too few outcomes" in one_line(result.output)
    assert "Traceback" not in result.output


def test_without_a_pii_key_one_is_made_on_first_use_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    """No public default: hashes made with a known key are reversible by guessing."""
    key_file = tmp_path / "secrets" / "pii.key"
    env = store_env(tmp_path, LEADLOOP_PII_KEY_FILE=str(key_file))
    assert invoke(env, "demo-data", "--leads", "200").exit_code == 0
    key = key_file.read_bytes()
    assert len(key) == 64 and key_file.stat().st_mode & 0o777 == 0o600
    assert Settings(pii_key_file=key_file).pii_key_bytes == key  # the same key next time
    given = Settings(pii_key_file=key_file, pii_key="a-key-of-my-own")
    assert given.pii_key_bytes == b"a-key-of-my-own"
    other = Settings(pii_key_file=tmp_path / "other.key").pii_key_bytes
    assert other != key


def test_import_refuses_bad_options_with_a_reason(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("id,visits,stage\na,1,won\nb,2,lost\n")
    base = ["import", str(export), "--id", "id", "--outcome", "stage", "--won", "won"]
    for extra, says in [(["--sep", ";;"], "--sep"), (["--id", "nope"], "no column 'nope'")]:
        result = invoke(store_env(tmp_path), *base, *extra)
        assert result.exit_code == 2, result.output
        assert says in one_line(result.output)


@pytest.mark.parametrize("width", ["40", "200"])
def test_output_lines_are_not_broken_at_the_console_width(tmp_path: Path, width: str) -> None:
    """A path printed into a pipe stays on one line, whatever COLUMNS says."""
    long_dir = tmp_path / ("a-folder-with-a-long-name-" * 4)
    env = store_env(tmp_path, COLUMNS=width)
    result = invoke(env, "report", "--out", str(long_dir))
    assert result.exit_code == 0, result.output
    assert f"Dashboard: {long_dir / 'index.html'}" in result.output.splitlines()[0]


def test_serve_with_workers_refuses_an_unreachable_store_before_starting_any(
    tmp_path: Path,
) -> None:
    """The parent sets up the store once for its workers: a store it cannot reach is a one-line
    error and exit code 2, not workers failing one after another."""
    env = store_env(tmp_path, LEADLOOP_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/x")
    result = invoke(env, "serve", "--workers", "2", "--port", "1")
    assert result.exit_code == 2
    assert "the store at LEADLOOP_DATABASE_URL failed" in one_line(result.stderr)
    assert "Traceback" not in result.output
