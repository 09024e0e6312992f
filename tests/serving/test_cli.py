"""The real `leadloop` console script, run as a user would: a subprocess with LEADLOOP_* set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, func, select

from models.registry import CHAMPION, alias_version, mlflow_client
from store.tables import Lead

LEADLOOP = Path(sys.executable).parent / "leadloop"
METRIC_NAMES = {"roc_auc", "pr_auc", "log_loss", "brier", "lift_at_10", "ece"}
DEMO_LEADS = 3_000


def store_env(directory: Path, **extra: str) -> dict[str, str]:
    """An environment naming only a throw-away store in `directory` (no developer LEADLOOP_*)."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        "LEADLOOP_DATABASE_URL": f"sqlite:///{directory}/leadloop.db",
        "LEADLOOP_MLFLOW_TRACKING_URI": f"sqlite:///{directory}/mlflow.db",
        "LEADLOOP_MLFLOW_ARTIFACT_ROOT": str(directory / "mlartifacts"),
        **extra,
    }


def leadloop(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; `cwd` keeps stray relative outputs in the temp dir."""
    assert LEADLOOP.exists(), f"console script not installed at {LEADLOOP}"
    return subprocess.run(
        [str(LEADLOOP), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def one_line(text: str) -> str:
    """Rich wraps messages at the console width; compare them with whitespace collapsed."""
    return " ".join(text.split())


def count_leads(directory: Path) -> int:
    engine = create_engine(f"sqlite:///{directory}/leadloop.db")
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Lead.__table__)) or 0
    finally:
        engine.dispose()


def test_help_lists_the_commands(tmp_path: Path) -> None:
    """The README's commands must all be reachable from `leadloop --help`."""
    result = leadloop(store_env(tmp_path), tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    for command in ("demo-data", "train", "serve"):
        assert command in result.stdout


def test_demo_data_then_train(tmp_path: Path) -> None:
    """The quick-start path: fill an empty store once, refuse to refill it, then train on it."""
    env = store_env(tmp_path)

    first = leadloop(env, tmp_path, "demo-data", "--leads", str(DEMO_LEADS), "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert count_leads(tmp_path) == DEMO_LEADS

    again = leadloop(env, tmp_path, "demo-data", "--leads", str(DEMO_LEADS), "--seed", "3")
    assert again.returncode == 2
    assert "already holds 3,000 leads" in one_line(again.stderr)
    assert "Traceback" not in again.stderr

    if_empty = leadloop(env, tmp_path, "demo-data", "--leads", "500", "--if-empty")
    assert if_empty.returncode == 0, if_empty.stderr
    assert "no demo data added" in one_line(if_empty.stderr)
    assert count_leads(tmp_path) == DEMO_LEADS

    trained = leadloop(env, tmp_path, "train", "--json")
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.count("\n") == 1, f"stdout is not one JSON line: {trained.stdout!r}"
    summary = json.loads(trained.stdout)
    assert isinstance(summary, dict)
    required = {"run_id", "model_version", "promoted", "metrics", "n_train", "n_holdout"}
    assert required <= set(summary)
    assert summary["model_version"] == "1"
    assert summary["promoted"] is True
    assert set(summary["metrics"]) == METRIC_NAMES
    assert summary["n_train"] > 0 and summary["n_holdout"] > 0
    assert summary["n_train"] + summary["n_holdout"] <= DEMO_LEADS

    champion = alias_version(
        mlflow_client(env["LEADLOOP_MLFLOW_TRACKING_URI"]), "lead-scoring", CHAMPION
    )
    assert champion is not None
    assert (str(champion.version), champion.run_id) == ("1", summary["run_id"])


def test_train_on_an_empty_store_fails_cleanly(tmp_path: Path) -> None:
    """A first-time user who forgot `demo-data` gets a reason, not a stack trace."""
    result = leadloop(store_env(tmp_path), tmp_path, "train")
    assert result.returncode == 2
    assert "too few outcomes" in one_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_production_refuses_the_development_pii_key(tmp_path: Path) -> None:
    """Hashes made with the public default key are reversible by guessing: refuse to start."""
    env = store_env(tmp_path, LEADLOOP_ENV="production")
    result = leadloop(env, tmp_path, "train")
    assert result.returncode == 2
    assert "LEADLOOP_PII_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "leadloop.db").exists(), "the store was opened before the refusal"


def test_import_refuses_bad_options_with_a_reason(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("id,visits,stage\na,1,won\nb,2,lost\n")
    base = ["import", str(export), "--id", "id", "--outcome", "stage", "--won", "won"]
    for extra, says in [(["--sep", ";;"], "--sep"), (["--id", "nope"], "no column 'nope'")]:
        result = leadloop(store_env(tmp_path), tmp_path, *base, *extra)
        assert result.returncode == 2, result.stderr
        assert says in one_line(result.stderr) and "Traceback" not in result.stderr
