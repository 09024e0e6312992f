"""Getting leads into the store: the demo funnel, or a CRM export."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from features.schema import DEMO_SCHEMA_PATH, FieldRole, FieldType, LeadSchema, load_schema
from features.schema_inference import ColumnRoles
from serving.cli.common import err, fail, now, open_store, out, reported_errors, start
from store.import_plan import OutcomeMapping
from store.importing import ImportReport, ImportRequest, MalformedRowsError, import_file
from store.outcomes import CLOSING_OUTCOMES
from store.row_order import RowOrder

#: Malformed lines listed before "... more not shown".
SHOWN_PROBLEMS = 20


def demo_data(
    leads: int = typer.Option(24_000, min=100, metavar="N", help="Number of leads to generate."),
    seed: int = typer.Option(0, metavar="S", help="Random seed; the same seed, the same funnel."),
    if_empty: bool = typer.Option(False, "--if-empty", help="Do nothing if the store has leads."),
) -> None:
    """Fill an empty store with the bundled synthetic B2B demo funnel."""
    settings = start()
    from store.demo_funnel import StoreNotEmptyError, seed_demo_funnel

    with reported_errors():
        schema = load_schema(settings.schema_path)
        # Phrases are the tenant's words for reasons: a copy that rewords them still fits.
        if schema.without_phrases() != load_schema(DEMO_SCHEMA_PATH).without_phrases():
            raise fail(f"demo data follows the bundled demo schema, not {settings.schema_path}")
        try:
            with err.status(f"Generating {leads:,} demo leads (seed {seed})"):
                seeded = seed_demo_funnel(
                    open_store(settings), schema, settings.pii_key_bytes, now(), leads, seed
                )
        except StoreNotEmptyError as exc:
            if not if_empty:
                raise fail(f"{exc}; demo data needs an empty one") from None
            err.print(f"{str(exc).capitalize()}; no demo data added.")
            return
    err.print(seeded.summary())


def import_export(
    file: Path = typer.Argument(..., metavar="FILE", help="CSV or Parquet, one row per lead."),
    id_column: str = typer.Option(..., "--id", metavar="COLUMN", help="The CRM's lead id."),
    outcome: str = typer.Option(..., metavar="COLUMN", help="The sales outcome or stage."),
    won: list[str] = typer.Option(..., metavar="VALUE", help="Outcome meaning won (repeat)."),
    lost: list[str] = typer.Option([], metavar="VALUE", help="Outcome meaning lost (repeat)."),
    disqualified: list[str] = typer.Option(
        [], metavar="VALUE", help="Outcome meaning disqualified (repeat)."
    ),
    time: str | None = typer.Option(None, metavar="COLUMN", help="When the lead was created."),
    closed_at: str | None = typer.Option(
        None, metavar="COLUMN", help="When the outcome happened (needs --time)."
    ),
    source: str | None = typer.Option(None, metavar="COLUMN", help="The lead source / channel."),
    lead_type: str | None = typer.Option(
        None, metavar="COLUMN", help="The lead type (MQL, SQL...)."
    ),
    drop: list[str] = typer.Option([], metavar="COLUMN", help="Leave a column out (repeat)."),
    sep: str = typer.Option(",", metavar="CHAR", help="CSV field separator (one character)."),
    row_order: RowOrder = typer.Option(
        RowOrder.AUTO, help="Without --time: which end is newest (auto: read an id sequence)."
    ),
    skip_malformed: bool = typer.Option(
        False, "--skip-malformed", help="Import the readable rows, list the rest."
    ),
    schema_out: Path | None = typer.Option(
        None, metavar="FILE", help="Where to write the inferred schema (var/schemas/FILE.yaml)."
    ),
) -> None:
    """Load a CRM export into the store and infer its lead schema for review."""
    settings = start()
    if len(sep) != 1:
        raise fail(f"--sep must be one character, not {sep!r}")
    with reported_errors():
        request = ImportRequest(
            path=file,
            roles=ColumnRoles(id=id_column, time=time, source=source, lead_type=lead_type),
            outcomes=OutcomeMapping(
                outcome, frozenset(won), frozenset(lost), frozenset(disqualified)
            ),
            schema_out=schema_out or Path("var/schemas") / f"{file.stem}.yaml",
            drop=tuple(drop),
            closed_at=closed_at,
            sep=sep,
            row_order=row_order,
            skip_malformed=skip_malformed,
        )
        try:
            report = import_file(request, open_store(settings), settings.pii_key_bytes, now())
        except MalformedRowsError as exc:
            for bad in exc.malformed[:SHOWN_PROBLEMS]:
                err.print(f"line {bad.line}: {bad.reason}")
            more = len(exc.malformed) - SHOWN_PROBLEMS
            raise fail(f"{exc}{f' ({more} more not shown)' if more > 0 else ''}") from None
    _print_import(report, request)


def _print_import(report: ImportReport, request: ImportRequest) -> None:
    plan, counts = report.plan, report.counts
    for bad in plan.malformed[:SHOWN_PROBLEMS]:
        err.print(f"skipped line {bad.line}: {bad.reason}")
    closed = Counter(event["outcome"] for event in plan.outcomes)
    out.print(
        f"Imported {len(plan.leads):,} leads: "
        + ", ".join(f"{closed[o]:,} {o}" for o in CLOSING_OUTCOMES)
        + f", {plan.n_open:,} open. Outcome events: {counts.accepted:,} new, "
        f"{counts.duplicates:,} already stored."
    )
    if plan.time_from_row_order:
        order = "newest first" if plan.newest_first else "oldest first"
        why = f", as {report.sequence!r} runs" if report.sequence else ""
        out.print(f"No --time column: row order stands for time order, read {order}{why}.")
    if report.schema_written:
        _print_inferred(report.schema)
    verb = "Inferred schema written to" if report.schema_written else "Used the existing schema"
    features = sum(f.is_model_input for f in report.schema.fields)
    out.print(f"{verb} {request.schema_out} ({features} candidate model inputs); review it, then:")
    out.print(f"  LEADLOOP_SCHEMA={request.schema_out} leadloop train")


def _print_inferred(schema: LeadSchema) -> None:
    """What the inference made of the columns: the model inputs, then why each category (whose
    rare values training groups) and each column set aside is so, as the file says it."""
    inputs = [f.name for f in schema.fields if f.is_model_input]
    out.print(f"Model inputs ({len(inputs)}): {', '.join(inputs)}.")
    table = Table("column", "why", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for f in schema.fields:
        category = f.is_model_input and f.type is FieldType.CATEGORICAL
        if category or not f.is_model_input and f.role not in (FieldRole.ID, FieldRole.TIME):
            table.add_row(f.name, f.description)
    if table.row_count:
        out.print(table)


def erase(
    lead_id: str = typer.Argument(..., metavar="LEAD_ID", help="The CRM's lead id."),
) -> None:
    """Erase a lead everywhere (its row, scores and outcomes) and keep it out from now on."""
    settings = start()
    from serving.services import erase_lead

    with reported_errors():
        erased = erase_lead(open_store(settings), lead_id, settings.pii_key_bytes, now())
    if erased is None:
        raise fail(f"no lead {lead_id!r} in the store: nothing erased")
    removed = f"{erased.snapshots:,} scores and {erased.outcomes:,} outcome events"
    err.print(
        f"Erased lead {escape(repr(lead_id))}: its row, {removed}. Imports and requests "
        "that send it again will not store it; models trained before keep what they learnt "
        "until the next training run."
    )
