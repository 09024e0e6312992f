"""`leadloop import`'s review printout: which columns became model inputs, which categories
have their rare values grouped, and which were set aside, each with why."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from features.schema import load_schema
from serving.cli import app


def test_import_says_what_it_kept_grouped_and_set_aside(tmp_path: Path) -> None:
    lines = ["id,campaign,visits,notes,reference,stage"]
    for i in range(3_000):
        campaign = f"cmp-{i % 280}" if i < 2_800 else f"cmp-rare-{i % 40}"  # 40 with 5 leads
        notes = f"spoke to the buyer about plan {i % 3} and agreed to call again next week"
        lines.append(f"L{i},{campaign},{i % 9},{notes},R{i},{'won' if i % 4 else 'lost'}")
    export = tmp_path / "export.csv"
    export.write_text("\n".join(lines) + "\n")
    schema_out = tmp_path / "schema.yaml"

    result = CliRunner().invoke(
        app,
        ["import", str(export), "--id", "id", "--outcome", "stage", "--won", "won"]
        + ["--lost", "lost", "--schema-out", str(schema_out)],
        env={"LEADLOOP_DATABASE_URL": f"sqlite:///{tmp_path}/leadloop.db"},
    )

    assert result.exit_code == 0, result.output
    printed = {line.split("  ")[0]: line for line in result.output.splitlines()}
    flat = " ".join(result.output.split())  # the same whatever width the table wraps at
    assert "Model inputs (2): campaign, visits." in flat
    campaign = "categorical: 320 values, 9 leads each on average; 40 of them under 10 leads"
    assert f"campaign {campaign}, grouped as 'other'" in flat
    assert "notes set aside: long free text (median 14 words)" in flat
    assert "reference set aside: 100% of values distinct" in flat
    assert "visits" not in printed and "id" not in printed, "only categories and set-asides"
    # The same reasons are in the file the user reviews.
    schema = load_schema(schema_out)
    assert schema.by_name["notes"].description in flat
