"""`score`: a file of leads scored by the champion, as the API would score them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from serving.cli.common import err, fail, open_registry, reported_errors, start

#: Refused rows listed on stderr before "... more".
SHOWN_PROBLEMS = 20


def score(
    source: Path = typer.Option(..., "--in", metavar="FILE", help="CSV or Parquet file of leads."),
    destination: Path = typer.Option(
        ..., "--out", metavar="FILE", help="Where to write the scores (.csv, or .parquet)."
    ),
    reasons: bool = typer.Option(False, "--reasons", help="Add each score's reasons (JSON)."),
    sep: str = typer.Option(",", "--sep", metavar="CHAR", help="A CSV file's field separator."),
    chunk_rows: int = typer.Option(
        10_000, "--chunk-rows", min=1, metavar="N", help="Rows read, scored and written at once."
    ),
) -> None:
    """Score a CSV or Parquet file of leads with the champion, a chunk at a time (a file larger
    than memory works). Rows the API would refuse are listed with their line; the others are
    scored. Exit code 2 if any row was refused."""
    settings = start()
    if len(sep) != 1:
        raise fail(f"--sep takes one character, not {sep!r}")
    from features.schema import load_schema
    from models.registry import load_champion
    from serving.batch_scoring import BatchFileError, score_file
    from serving.champion_watch import schema_problem

    with reported_errors(BatchFileError):
        found = load_champion(open_registry(settings), settings.model_name)
        if found.champion is None:
            raise fail(found.problem or "no champion model yet: run `make train` first")
        schema = load_schema(settings.schema_path)
        problem = schema_problem(found.champion, schema)
        if problem is not None:  # the API would not serve it either
            version = found.champion.version
            raise fail(f"the champion (version {version}) cannot score this lead schema: {problem}")
        columns = [TextColumn("Scoring"), BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
        with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("score", total=1.0)
            result = score_file(
                found.champion,
                schema,
                source,
                destination,
                reasons,
                sep,
                chunk_rows,
                progress=lambda done: bar.update(task, completed=done),
            )
    err.print(
        f"Scored {result.scored:,} leads into {escape(str(destination))} "
        f"(model version {found.champion.version})."
    )
    if result.refused_rows:
        for row in result.refused[:SHOWN_PROBLEMS]:
            where = f"{row.field}: " if row.field else ""
            err.print(f"  line {row.line}: {escape(where + row.message)}")
        if result.refused_rows > SHOWN_PROBLEMS:
            err.print(f"  ... and {result.refused_rows - SHOWN_PROBLEMS:,} more")
        raise fail(f"{result.refused_rows:,} rows refused (listed above), the others scored")
