"""Reasons read as a sales rep would say them, from the schema's phrases or a plain default."""

from __future__ import annotations

import pytest

from features.phrases import reason_text
from features.schema import FieldType, LeadField, SchemaError, parse_schema

QUANTILES = tuple(float(q) for q in range(0, 21))  # the values 0 to 20 at every 5%


def field(kind: FieldType, **phrases: object) -> LeadField:
    return LeadField.model_validate(
        {"name": "page_views", "type": kind, "phrases": phrases or None}
    )


def test_without_phrases_a_reason_reads_field_is_value() -> None:
    plain = field(FieldType.CATEGORICAL)
    assert reason_text(plain, "page_views", "webinar", 3.0, ()) == "Page views is webinar"
    assert reason_text(None, "lead_source", None, -2.0, ()) == "Lead source is unknown"
    flag = field(FieldType.BOOLEAN)
    assert reason_text(flag, "page_views", True, 1.0, ()) == "Page views is yes"


def test_a_phrase_per_value_per_direction_and_for_missing() -> None:
    phrased = field(
        FieldType.CATEGORICAL,
        values={"webinar": "Came from a webinar"},
        missing="Source unknown",
        raises="Came from {value}",
        lowers="Came from {value}, which rarely converts",
    )
    assert reason_text(phrased, "source", "webinar", -4.0, ()) == "Came from a webinar"
    assert reason_text(phrased, "source", " ", 2.0, ()) == "Source unknown"
    assert reason_text(phrased, "source", "fax", 2.0, ()) == "Came from fax"
    assert reason_text(phrased, "source", "fax", -2.0, ()) == "Came from fax, which rarely converts"


def test_boolean_phrases_are_keyed_true_and_false_even_from_yaml() -> None:
    schema = parse_schema(
        """
name: t
fields:
  - {name: lead_id, type: text, role: id}
  - name: demo_requested
    type: boolean
    phrases: {values: {true: Asked for a demo, false: Has not asked for a demo}}
"""
    )
    demo = schema.by_name["demo_requested"]
    assert reason_text(demo, demo.name, True, 5.0, ()) == "Asked for a demo"
    assert reason_text(demo, demo.name, False, -5.0, ()) == "Has not asked for a demo"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (20.0, "20 page views (top 10%)"),
        (18.5, "18.5 page views (top 10%)"),
        (17.5, "17.5 page views (top 25%)"),  # between two quantiles: surely above 85% only
        (16.0, "16 page views (top 25%)"),
        (10.0, "10 page views"),
        (4.0, "4 page views (bottom 25%)"),
        (0.0, "0 page views (bottom 10%)"),
        (1_250.0, "1,250 page views (top 10%)"),
    ],
)
def test_a_number_says_where_it_stands_among_the_training_leads(
    value: float, expected: str
) -> None:
    views = field(FieldType.NUMERIC, raises="{value} page views", lowers="{value} page views")
    assert reason_text(views, "page_views", value, 1.0, QUANTILES) == expected


def test_a_value_shared_by_most_leads_is_no_extreme() -> None:
    """Most leads opened no e-mail: zero is common, not the bottom 10%."""
    mostly_zero = (0.0,) * 15 + (1.0, 2.0, 3.0, 5.0, 8.0, 13.0)
    views = field(FieldType.NUMERIC)
    assert reason_text(views, "email_opens", 0.0, -1.0, mostly_zero) == "Email opens is 0"


def test_a_phrase_with_another_placeholder_is_refused_when_the_schema_loads() -> None:
    with pytest.raises(ValueError, match="only placeholder"):
        field(FieldType.NUMERIC, raises="{count} page views")
    for broken in ("x {", "{}", "{value:d}", "{value.real}"):
        with pytest.raises(ValueError, match="only placeholder"):
            field(FieldType.NUMERIC, lowers=broken)
    with pytest.raises(SchemaError, match="phrase"):
        parse_schema(
            "name: t\nfields:\n  - {name: lead_id, type: text, role: id}\n"
            "  - {name: x, type: numeric, phrases: {raises: 'x {'}}\n"
        )
    plain = field(FieldType.NUMERIC, missing="Size {unknown}")  # plain text, shown as written
    assert reason_text(plain, "x", None, 1.0, ()) == "Size {unknown}"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2_500_000.25, "2,500,000.25"), (12_345.5, "12,345.5"), (0.035, "0.035"), (-0.0, "0")],
)
def test_numbers_read_as_numbers(value: float, shown: str) -> None:
    assert reason_text(field(FieldType.NUMERIC), "x", value, 1.0, ()) == f"X is {shown}"


def test_phrases_for_values_a_field_cannot_take_are_refused() -> None:
    """YAML reads an unquoted `yes:` as a boolean: on a categorical field such a phrase would
    never be shown, so the schema says so when it loads."""
    head = "name: t\nfields:\n  - {name: lead_id, type: text, role: id}\n"
    with pytest.raises(SchemaError, match="quote"):
        parse_schema(head + "  - {name: opt_in, type: categorical, phrases: {values: {yes: In}}}\n")
    with pytest.raises(SchemaError, match="webinr"):
        parse_schema(
            head + "  - {name: s, type: categorical, categories: [webinar],"
            " phrases: {values: {webinr: Came from a webinar}}}\n"
        )
    quoted = parse_schema(
        head + "  - {name: opt_in, type: categorical, phrases: {values: {'yes': In}}}\n"
    )
    opt_in = quoted.by_name["opt_in"]
    assert reason_text(opt_in, opt_in.name, "yes", 1.0, ()) == "In"
