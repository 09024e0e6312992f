"""The request model accepts exactly the tenant's fields, only values the loop can live with,
and names whatever it refuses."""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from features.schema import FieldRole, LeadSchema, SchemaError, parse_schema
from features.validation import FUTURE_TOLERANCE, LEAD_ID_KEY, lead_model


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


def refused_fields(model: type[BaseModel], payload: dict[str, Any]) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    return error_locations(caught.value)


@pytest.mark.parametrize(
    "moment",
    [
        "3000-01-01T00:00:00Z",  # would be the newest lead of every later training window
        "9999-12-31T23:00:00-05:00",  # has no UTC time: overflows
        "0001-01-01T00:00:00+01:00",  # overflows the other way
        "1989-12-31T23:59:59Z",
        (datetime.now(UTC) + FUTURE_TOLERANCE + timedelta(minutes=5)).isoformat(),
    ],
    ids=["year-3000", "overflow-high", "overflow-low", "before-1990", "ahead-of-tolerance"],
)
def test_times_outside_the_documented_range_are_refused_by_name(
    lead_in: type[BaseModel], moment: str
) -> None:
    assert refused_fields(lead_in, {"lead_id": "x", "created_at": moment}) == {"created_at"}


@pytest.mark.parametrize(
    "moment", ["1990-01-01T00:00:00Z", "2026-03-01T09:30:00+09:00", "2026-03-01T09:30:00"]
)
def test_times_within_the_range_are_kept_as_given(lead_in: type[BaseModel], moment: str) -> None:
    lead = lead_in.model_validate({"lead_id": "x", "created_at": moment})
    assert lead.created_at == datetime.fromisoformat(moment)


@pytest.mark.parametrize("lead_id", ["a\nb", "a\x00b", "\x1b[31mred", "tab\there", "del\x7f"])
def test_control_characters_in_ids_are_refused(lead_in: type[BaseModel], lead_id: str) -> None:
    """A newline makes an id no URL can name; PostgreSQL refuses a NUL."""
    assert refused_fields(lead_in, {"lead_id": lead_id}) == {LEAD_ID_KEY}


@settings(deadline=None)
@given(text=st.text(min_size=1, max_size=30))
def test_an_accepted_id_never_holds_a_control_character(
    lead_in: type[BaseModel], text: str
) -> None:
    """Accepted: the id as given less surrounding whitespace, free of control characters.
    Refused: only a blank id or one holding a control character."""
    try:
        lead_id = lead_in.model_validate({"lead_id": text}).lead_id
    except ValidationError:
        assert not text.strip() or any(unicodedata.category(c) == "Cc" for c in text)
        return
    assert lead_id and lead_id in text and lead_id.strip() == text.strip()
    assert not any(unicodedata.category(c) == "Cc" for c in lead_id)


def test_categories_refuse_control_characters_and_text_keeps_line_breaks() -> None:
    schema = parse_schema(
        "name: t\nfields:\n"
        "  - {name: ref, type: text, role: id}\n"
        "  - {name: plan, type: categorical}\n"
        "  - {name: note, type: text, role: attribute}\n"
    )
    model = lead_model(schema)
    assert refused_fields(model, {"lead_id": "x", "plan": "pro\x00"}) == {"plan"}
    assert refused_fields(model, {"lead_id": "x", "note": "hi\x00"}) == {"note"}
    assert model.model_validate({"lead_id": "x", "note": "line 1\r\nline 2\tend"}).note


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(lead_in: type[BaseModel], value: bool) -> None:
    assert refused_fields(lead_in, {"lead_id": "x", "page_views": value}) == {"page_views"}


def test_declared_ranges_are_enforced() -> None:
    schema = parse_schema(
        "name: t\nfields:\n"
        "  - {name: ref, type: text, role: id}\n"
        "  - {name: visits, type: numeric, minimum: 0}\n"
        "  - {name: rating, type: numeric, minimum: 1, maximum: 5}\n"
    )
    model = lead_model(schema)
    assert refused_fields(model, {"lead_id": "x", "visits": -1}) == {"visits"}
    assert refused_fields(model, {"lead_id": "x", "rating": 5.5}) == {"rating"}
    assert model.model_validate({"lead_id": "x", "visits": 0, "rating": 5}).rating == 5


@pytest.mark.parametrize(
    "field",
    [
        "{name: plan, type: categorical, minimum: 0}",
        "{name: visits, type: numeric, minimum: 5, maximum: 1}",
    ],
)
def test_ranges_need_a_numeric_field_and_an_order(field: str) -> None:
    with pytest.raises(SchemaError, match="minimum"):
        parse_schema(f"name: t\nfields:\n  - {{name: ref, type: text, role: id}}\n  - {field}\n")


def test_the_character_classes_are_unicodes_for_every_code_point() -> None:
    """The regular expressions that refuse control characters and surrogates match exactly the
    characters Unicode puts in those categories."""
    import unicodedata

    from features.validation import _CONTROL, _SURROGATE, _TEXT_CONTROL

    for point in range(0x110000):
        char = chr(point)
        category = unicodedata.category(char)
        assert (category == "Cc") == bool(_CONTROL.match(char)), hex(point)
        assert (category == "Cc" and char not in "\t\n\r") == bool(_TEXT_CONTROL.match(char))
        assert (category == "Cs") == bool(_SURROGATE.match(char)), hex(point)
