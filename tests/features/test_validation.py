"""The request model accepts exactly the tenant's fields and names whatever it refuses."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from features.schema import FieldRole, LeadSchema, parse_schema
from features.validation import LEAD_ID_KEY, lead_model


@pytest.fixture(scope="module")
def lead_in(demo_schema: LeadSchema) -> type[BaseModel]:
    return lead_model(demo_schema)


def error_locations(error: ValidationError) -> set[str]:
    """Field names the errors point at (first element of each location)."""
    return {str(e["loc"][0]) for e in error.errors()}


def test_unknown_field_is_refused_by_name(lead_in: type[BaseModel]) -> None:
    """A misspelt field would otherwise be dropped and the lead scored as if it were missing."""
    with pytest.raises(ValidationError) as caught:
        lead_in.model_validate({"lead_id": "x", "page_veiws": 3})
    assert error_locations(caught.value) == {"page_veiws"}


@pytest.mark.parametrize("value", ["many", [3], {"count": 3}])
def test_wrong_type_for_a_numeric_field_is_refused(lead_in: type[BaseModel], value: Any) -> None:
    """The encoder would fail later on such a value; the API must refuse it up front."""
    with pytest.raises(ValidationError) as caught:
        lead_in.model_validate({"lead_id": "x", "page_views": value})
    assert error_locations(caught.value) == {"page_views"}


def test_numeric_strings_are_read_as_numbers(lead_in: type[BaseModel]) -> None:
    """JSON from form tools often quotes numbers; the value is what counts."""
    lead = lead_in.model_validate({"lead_id": "x", "page_views": "12"})
    assert lead.page_views == 12.0


@pytest.mark.parametrize("payload", [{}, {"lead_id": ""}, {"lead_id": None}])
def test_lead_id_is_required_and_non_empty(lead_in: type[BaseModel], payload: dict) -> None:
    """Scores and outcomes join on the lead id; a lead without one cannot be followed up."""
    with pytest.raises(ValidationError) as caught:
        lead_in.model_validate(payload | {"page_views": 1})
    assert error_locations(caught.value) == {LEAD_ID_KEY}


def test_numeric_values_of_text_fields_become_strings(lead_in: type[BaseModel]) -> None:
    """CRMs send numeric codes for categories and ids; they are labels, not numbers."""
    lead = lead_in.model_validate({"lead_id": 1234, "industry": 52, "country": 3.5})
    assert lead.lead_id == "1234"
    assert lead.industry == "52"
    assert lead.country == "3.5"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "NaN", "inf"])
def test_non_finite_numbers_are_refused(lead_in: type[BaseModel], value: Any) -> None:
    """NaN or infinity would silently be scored as missing or as an extreme value."""
    with pytest.raises(ValidationError) as caught:
        lead_in.model_validate({"lead_id": "x", "company_size": value})
    assert error_locations(caught.value) == {"company_size"}


def test_every_non_id_field_is_optional(lead_in: type[BaseModel], demo_schema: LeadSchema) -> None:
    """Missing values are scored through the model's missing branches, never refused."""
    lead = lead_in.model_validate({"lead_id": "x"})
    others = [f.name for f in demo_schema.fields if f.role is not FieldRole.ID]
    assert others
    assert set(lead_in.model_fields) == {LEAD_ID_KEY, *others}
    assert all(getattr(lead, name) is None for name in others)
    explicit_nulls = lead_in.model_validate({"lead_id": "x"} | dict.fromkeys(others))
    assert explicit_nulls == lead


def test_id_field_is_taken_under_lead_id_whatever_its_schema_name() -> None:
    """Requests always say `lead_id`, so integrations do not depend on each CRM's naming."""
    schema = parse_schema(
        "name: t\nfields:\n"
        "  - {name: crm_ref, type: text, role: id}\n"
        "  - {name: plan, type: categorical}\n"
    )
    model = lead_model(schema)
    assert set(model.model_fields) == {LEAD_ID_KEY, "plan"}
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"crm_ref": "x"})
    assert error_locations(caught.value) == {LEAD_ID_KEY, "crm_ref"}


def test_a_non_id_field_called_lead_id_is_refused() -> None:
    """It would collide with the request key that carries the id."""
    schema = parse_schema(
        "name: t\nfields:\n"
        "  - {name: crm_ref, type: text, role: id}\n"
        "  - {name: lead_id, type: categorical}\n"
    )
    with pytest.raises(ValueError, match="reserved"):
        lead_model(schema)
