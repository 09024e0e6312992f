"""The check before training: does the schema describe the stored leads, and if not, which
schema did the leads come with?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from features.schema import parse_schema
from store.repository import add_import, fields_in_leads, latest_import, upsert_leads
from store.schema_fit import SchemaMismatchError, check_schema_fits_store, schema_fit
from tests.support import NOW

SCHEMA = parse_schema(
    """
name: made-up
fields:
  - {name: id, type: text, role: id}
  - {name: channel, type: categorical, role: source}
  - {name: visits, type: numeric}
  - {name: seats, type: numeric}
  - {name: plan, type: categorical}
  - {name: rating, type: numeric, known_at_scoring: false}
  - {name: email, type: text, role: pii}
"""
)
MODEL_FIELDS = ("channel", "visits", "seats", "plan")


def stored_lead(lead_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "created_at": NOW,
        "source": None,
        "lead_type": None,
        "attributes": attributes,
        "pii_hashes": {},
        "updated_at": NOW,
    }


def store_leads(sessions: sessionmaker[Session], *leads: dict[str, Any]) -> None:
    with sessions.begin() as session:
        upsert_leads(session, list(leads))


def record_import(sessions: sessionmaker[Session], schema_path: Path, file_name: str) -> None:
    with sessions.begin() as session:
        add_import(
            session,
            {
                "imported_at": NOW,
                "file_name": file_name,
                "schema_path": str(schema_path),
                "schema_yaml": SCHEMA.to_yaml(),
                "n_leads": 1,
            },
        )


def test_the_fit_counts_model_fields_only() -> None:
    """Fields the model never sees (not known at scoring, PII) neither help nor hurt."""
    fit = schema_fit(SCHEMA, {"visits", "rating", "email", "unrelated"})
    assert fit.model_fields == MODEL_FIELDS
    assert fit.present == {"visits"} and fit.missing == ("channel", "seats", "plan")
    assert fit.too_few
    assert not schema_fit(SCHEMA, {"visits", "seats"}).too_few  # half is enough
    assert schema_fit(SCHEMA, set()).too_few


def test_fields_in_leads_are_those_with_a_value_somewhere(sessions: sessionmaker[Session]) -> None:
    store_leads(
        sessions,
        stored_lead("a", visits=None, plan="pro"),
        stored_lead("b", visits=3.0, other="x"),
    )
    with sessions() as session:
        assert fields_in_leads(session, ["visits", "plan", "seats"]) == {"visits", "plan"}


def test_a_store_of_other_leads_names_the_schema_the_last_import_used(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store_leads(sessions, stored_lead("a", **{"Lead Origin": "web", "Total Visits": 2.0}))
    imported = tmp_path / "the export.yaml"
    record_import(sessions, tmp_path / "first.yaml", "first.csv")
    record_import(sessions, imported, "the export.csv")
    with pytest.raises(SchemaMismatchError) as raised:
        check_schema_fits_store(sessions, SCHEMA, Path("schemas/made-up.yaml"))
    message = str(raised.value)
    assert message.startswith("none of the 4 model fields of the schema schemas/made-up.yaml")
    assert "missing: 'channel', 'visits', 'seats', 'plan'" in message
    assert "the last import (the export.csv, " in message
    assert message.endswith(f"leadloop train --schema '{imported}'")


def test_fewer_than_half_of_the_fields_stop_training_too(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    store_leads(sessions, stored_lead("a", visits=1.0, colour="red"))
    with pytest.raises(SchemaMismatchError, match="only 1 of the 4 model fields") as raised:
        check_schema_fits_store(sessions, SCHEMA, tmp_path / "made-up.yaml")
    assert str(raised.value).endswith(
        "the store has no import: pass the schema of its leads with --schema"
    )


def test_the_import_s_own_schema_is_not_suggested_again(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The last import's schema no longer matching (edited by hand) needs a look, not a command."""
    store_leads(sessions, stored_lead("a", colour="red"))
    record_import(sessions, tmp_path / "made-up.yaml", "export.csv")
    with pytest.raises(SchemaMismatchError, match="it is the schema the last import .* used"):
        check_schema_fits_store(sessions, SCHEMA, tmp_path / "made-up.yaml")


def test_a_fitting_or_empty_store_passes(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """An empty store is left to training, which says how many outcomes it needs."""
    assert not check_schema_fits_store(sessions, SCHEMA, tmp_path / "s.yaml").too_few
    store_leads(sessions, stored_lead("a", channel="ads", visits=1.0), stored_lead("b", plan="x"))
    fit = check_schema_fits_store(sessions, SCHEMA, tmp_path / "s.yaml")
    assert fit.missing == ("seats",)
    with sessions() as session:
        assert latest_import(session) is None
