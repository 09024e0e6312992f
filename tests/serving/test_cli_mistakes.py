"""Mistakes `leadloop` catches before they cost an hour: training with a schema the stored
leads do not have, an outcome value that never occurs, the wrong separator, a store that
already holds other leads. Each says what is wrong and, where it stops, exits with code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from features.schema import DEMO_SCHEMA_PATH, LeadSchema
from serving.cli import app
from tests.support import empty_mlflow_store

EXPORT = """id,channel,visits,plan,stage,created
a1,ads,3,pro,won,2025-01-01
a2,webinar,1,free,lost,2025-01-02
a3,ads,,free,open,2025-01-03
a4,referral,7,pro,lost,2025-01-04
"""


def store_env(directory: Path, **extra: str) -> dict[str, str]:
    """An environment naming only a throw-away store in `directory`."""
    return {
        "LEADLOOP_DATABASE_URL": f"sqlite:///{directory}/leadloop.db",
        "LEADLOOP_MLFLOW_TRACKING_URI": empty_mlflow_store(directory),
        "LEADLOOP_MLFLOW_ARTIFACT_ROOT": str(directory / "mlartifacts"),
        **extra,
    }


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def one_line(text: str) -> str:
    return " ".join(text.split())


def import_export(
    directory: Path, content: str = EXPORT, name: str = "export.csv", *extra: str
) -> tuple[Result, Path]:
    """`leadloop import` of a made-up export; the result and where its schema was written."""
    export = directory / name
    export.write_text(content, encoding="utf-8")
    schema = directory / "schemas" / f"{export.stem}.yaml"
    result = invoke(
        store_env(directory),
        "import",
        str(export),
        "--id",
        "id",
        "--outcome",
        "stage",
        "--won",
        "won",
        "--lost",
        "lost",
        "--time",
        "created",
        "--source",
        "channel",
        "--schema-out",
        str(schema),
        *extra,
    )
    return result, schema


def test_training_an_imported_store_with_the_demo_schema_stops_and_names_the_import_s(
    tmp_path: Path, demo_schema: LeadSchema
) -> None:
    demo_fields = [f.name for f in demo_schema.model_fields_in_order]
    imported, schema = import_export(tmp_path)
    assert imported.exit_code == 0, imported.output
    command = f"leadloop train --schema {schema.resolve()}"
    chosen_by = [
        (store_env(tmp_path), ["--schema", str(DEMO_SCHEMA_PATH)]),
        (store_env(tmp_path, LEADLOOP_SCHEMA=str(DEMO_SCHEMA_PATH)), []),
    ]
    for env, option in chosen_by:
        result = invoke(env, "train", *option)
        assert result.exit_code == 2, result.output
        message = one_line(result.stderr)
        model_fields = f"{len(demo_fields)} model fields of the schema {DEMO_SCHEMA_PATH}"
        assert f"none of the {model_fields} are in the store's leads" in message
        assert "missing: " + ", ".join(map(repr, demo_fields[:3])) in message
        assert "the last import (export.csv, " in message and message.endswith(command)
        assert "Traceback" not in result.output


def test_train_chooses_the_option_then_the_variable_then_the_last_import(
    tmp_path: Path,
) -> None:
    """Each choice is said on stderr; these stores have too few outcomes to go further."""
    empty = invoke(store_env(tmp_path / "empty"), "train")
    assert "Schema: " in empty.stderr and "(the bundled demo schema" in one_line(empty.stderr)

    imported, schema = import_export(tmp_path)
    assert imported.exit_code == 0, imported.output
    option, variable = tmp_path / "option.yaml", tmp_path / "variable.yaml"
    shutil.copy(schema, option)
    shutil.copy(schema, variable)
    with_variable = store_env(tmp_path, LEADLOOP_SCHEMA=str(variable))
    cases = [
        (with_variable, ["--schema", str(option)], f"Schema: {option} (--schema)"),
        (with_variable, [], f"Schema: {variable} (LEADLOOP_SCHEMA)"),
        (
            store_env(tmp_path),
            [],
            f"Schema: {schema.resolve()} (used by the last import, of export.csv; `serve` and "
            "`report` read LEADLOOP_SCHEMA: set it to this file for them)",
        ),
    ]
    for env, extra, says in cases:
        result = invoke(env, "train", *extra)
        assert result.exit_code == 2, result.output
        assert says in one_line(result.stderr)
        assert "too few outcomes" in one_line(result.stderr)

    schema.unlink()  # moved or on another machine: the store kept a copy
    kept = invoke(store_env(tmp_path), "train")
    assert "the file is gone: the copy kept in the store" in one_line(kept.stderr)
    assert "too few outcomes" in one_line(kept.stderr)


def test_a_few_missing_fields_are_a_warning_and_training_goes_on(tmp_path: Path) -> None:
    imported, schema = import_export(tmp_path)
    assert imported.exit_code == 0, imported.output
    wider = tmp_path / "wider.yaml"
    wider.write_text(
        schema.read_text() + "- name: seats\n  type: numeric\n  role: feature\n", "utf-8"
    )
    result = invoke(store_env(tmp_path), "train", "--schema", str(wider))
    assert result.exit_code == 2, result.output
    assert "warning: 1 of the 4 model fields are in no stored lead: 'seats'" in one_line(
        result.stderr
    )
    assert "too few outcomes" in one_line(result.stderr)


def test_train_json_prints_an_object_on_stdout_when_it_stops(tmp_path: Path) -> None:
    """A script reading stdout parses the reason instead of nothing."""
    empty = invoke(store_env(tmp_path / "empty"), "train", "--json")
    imported, _ = import_export(tmp_path)
    assert imported.exit_code == 0, imported.output
    mismatch = invoke(store_env(tmp_path), "train", "--json", "--schema", str(DEMO_SCHEMA_PATH))
    settings = invoke(store_env(tmp_path, LEADLOOP_MIN_OUTCOMES="0"), "train", "--json")
    for result, says in [
        (empty, "too few outcomes"),
        (mismatch, "none of the "),
        (settings, "LEADLOOP_MIN_OUTCOMES"),
    ]:
        assert result.exit_code == 2, result.output
        assert result.stdout.count("\n") == 1, result.stdout
        summary = json.loads(result.stdout)
        assert summary["exit_code"] == 2 and says in summary["error"]
        assert says in one_line(result.stderr)


def test_import_warns_when_an_outcome_value_never_occurs(tmp_path: Path) -> None:
    result, _ = import_export(tmp_path, EXPORT, "export.csv", "--disqualified", "Junk")
    assert result.exit_code == 0, result.output
    assert (
        "--disqualified 'Junk' never occurs in 'stage'; its values: 'lost' (2), 'won' (1), "
        "'open' (1)" in one_line(result.stderr)
    )


def test_import_hints_at_sep_when_the_header_reads_as_one_column(tmp_path: Path) -> None:
    result, schema = import_export(tmp_path, EXPORT.replace(",", ";"))
    assert result.exit_code == 2
    assert "no column 'id'" in one_line(result.stderr)
    assert one_line(result.stderr).endswith("the header reads as one column: try --sep ';'")
    assert not schema.exists()
    again, _ = import_export(tmp_path, EXPORT.replace(",", ";"), "export.csv", "--sep", ";")
    assert again.exit_code == 0, again.output


def test_import_warns_when_the_store_holds_other_leads(tmp_path: Path) -> None:
    first, _ = import_export(tmp_path)
    assert first.exit_code == 0 and "already held" not in first.output
    other = EXPORT.replace("a1,", "b1,").replace("a2,", "b2,").replace("a3,", "b3,")
    result, _ = import_export(tmp_path, other, "other.csv")
    assert result.exit_code == 0, result.output
    assert (
        "the store already held 3 leads that are not in this file (the last import was "
        "export.csv)" in one_line(result.stderr)
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://user:secret@localhost/leads", "'mysql' is not supported"),
        ("not a url at all", "not a database URL"),
        ("sqlite:///{missing}/store.db", "does not exist"),
    ],
    ids=["unsupported-driver", "garbage", "missing-folder"],
)
def test_a_store_url_leadloop_cannot_open_is_one_line_and_exit_2(
    tmp_path: Path, url: str, says: str
) -> None:
    """Not a traceback, no password echoed, and no empty store started in a mistyped folder."""
    missing = tmp_path / "no" / "such" / "folder"
    env = store_env(tmp_path, LEADLOOP_DATABASE_URL=url.format(missing=missing))
    for command in (["train"], ["report"], ["demo-data"]):
        result = invoke(env, *command)
        assert result.exit_code == 2, result.output
        assert says in one_line(result.output) and "secret" not in result.output
        assert "Traceback" not in result.output
    assert not missing.parent.exists()
