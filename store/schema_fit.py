"""Does a lead schema describe the store's leads? Checked before training, in a second.

Training with the wrong schema (the bundled demo schema on an imported store, or one export's
schema on another's leads) does not fail by itself: every model field is simply missing, and
the run ends an hour later with a model of the base rate, or the guard's "no field left". The
check compares the schema's model fields with the fields the stored leads hold, and says
which schema the store's last import wrote.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from store.repository import count_leads, fields_in_leads, latest_import
from store.tables import Import

#: Missing fields named in a message before "and N more".
SHOWN_FIELDS = 10


class SchemaMismatchError(ValueError):
    """The schema's model fields are (mostly) absent from the stored leads."""


@dataclass(frozen=True)
class SchemaFit:
    """Which of a schema's model fields the stored leads hold."""

    model_fields: tuple[str, ...]
    present: frozenset[str]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(name for name in self.model_fields if name not in self.present)

    @property
    def too_few(self) -> bool:
        """Fewer than half present: the model would learn from the wrong columns, if any."""
        return 2 * len(self.present) < len(self.model_fields)


def schema_fit(schema: LeadSchema, present: set[str] | frozenset[str]) -> SchemaFit:
    """Compare the schema's model fields with the fields found in the stored leads."""
    names = tuple(f.name for f in schema.model_fields_in_order)
    return SchemaFit(names, frozenset(present) & frozenset(names))


def check_schema_fits_store(
    sessions: sessionmaker[Session], schema: LeadSchema, schema_file: Path
) -> SchemaFit:
    """The fit of `schema` (read from `schema_file`) to the stored leads; SchemaMismatchError
    naming the schema the last import wrote when fewer than half of its model fields are there.

    An empty store passes: training then says how many outcomes it still needs.
    """
    with sessions() as session:
        if count_leads(session) == 0:
            return SchemaFit((), frozenset())
        names = [f.name for f in schema.model_fields_in_order]
        fit = schema_fit(schema, fields_in_leads(session, names))
        last = latest_import(session)
    if fit.too_few:
        raise SchemaMismatchError(mismatch_message(fit, schema_file, last))
    return fit


def mismatch_message(fit: SchemaFit, schema_file: Path, last: Import | None) -> str:
    """What is wrong, and the command that trains with the schema the leads were imported with."""
    share = "none" if not fit.present else f"only {len(fit.present)}"
    message = (
        f"{share} of the {len(fit.model_fields)} model fields of the schema {schema_file} "
        f"are in the store's leads (missing: {fields_list(fit.missing)})"
    )
    if last is None:
        return f"{message}; the store has no import: pass the schema of its leads with --schema"
    imported = f"the last import ({last.file_name}, {last.imported_at:%Y-%m-%d %H:%M} UTC)"
    if Path(last.schema_path).resolve() == schema_file.resolve():
        return f"{message}; it is the schema {imported} used: check its field names"
    command = f"leadloop train --schema {shlex.quote(last.schema_path)}"
    return f"{message}; {imported} used {last.schema_path}: {command}"


def fields_list(names: tuple[str, ...]) -> str:
    """Field names for a message, the first few of a long list."""
    shown = ", ".join(repr(n) for n in names[:SHOWN_FIELDS])
    more = len(names) - SHOWN_FIELDS
    return f"{shown} and {more} more" if more > 0 else shown
