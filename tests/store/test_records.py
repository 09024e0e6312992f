"""A lead becomes a store row with its PII only as keyed hashes and its times in aware UTC."""

from __future__ import annotations

import hashlib
import hmac
import math
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.schema import LeadSchema, parse_schema
from store.records import hash_pii, json_value, lead_row

KEY = b"records-test-key"
RECEIVED = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
EMAIL = "Ana.Smith42@Acme.example"
NAME = "Ana Müller"


def demo_lead(**overrides: Any) -> dict[str, Any]:
    lead = {
        "lead_id": "L-1",
        "email": EMAIL,
        "full_name": NAME,
        "created_at": datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        "source": "webinar",
        "lead_type": "SQL",
        "industry": "software",
        "page_views": 12.0,
        "demo_requested": True,
    }
    return lead | overrides


def test_pii_is_replaced_by_its_keyed_hmac(demo_schema: LeadSchema) -> None:
    """The hash must be a standard HMAC-SHA256 so other systems holding the key can join."""
    row = lead_row(demo_schema, demo_lead(), KEY, RECEIVED)
    expected = hmac.new(KEY, EMAIL.casefold().encode(), hashlib.sha256).hexdigest()
    assert row["pii_hashes"]["email"] == expected
    assert set(row["pii_hashes"]) == {"email", "full_name"}


def test_pii_hash_depends_on_the_key() -> None:
    """Without the tenant's key, a hash cannot be matched against a list of known e-mails."""
    assert hash_pii(EMAIL, b"key-one") != hash_pii(EMAIL, b"key-two")


@pytest.mark.parametrize(
    "variant",
    ["ana.smith42@acme.example", "  ANA.SMITH42@ACME.EXAMPLE\t", "Ana.Smith42@Acme.example"],
)
def test_pii_hash_ignores_case_and_surrounding_blanks(variant: str) -> None:
    """The same person typed differently in two CRMs must hash to the same value."""
    assert hash_pii(variant, KEY) == hash_pii(EMAIL, KEY)


def test_pii_hash_ignores_unicode_composition() -> None:
    """macOS and some CRMs send decomposed accents; the same name must still join."""
    composed, decomposed = unicodedata.normalize("NFC", NAME), unicodedata.normalize("NFD", NAME)
    assert composed != decomposed
    assert hash_pii(decomposed, KEY) == hash_pii(composed, KEY)


def test_different_pii_values_hash_differently() -> None:
    """Normalising must not merge different people."""
    assert hash_pii("ana.smith42@acme.example", KEY) != hash_pii("ana.smith43@acme.example", KEY)


def test_raw_pii_is_kept_nowhere_in_the_row(demo_schema: LeadSchema) -> None:
    """Only hashes may reach the database; the raw e-mail and name must not hide in attributes."""
    row = lead_row(demo_schema, demo_lead(), KEY, RECEIVED)
    assert "email" not in row["attributes"] and "full_name" not in row["attributes"]
    text = repr(row).casefold()
    assert EMAIL.casefold() not in text
    assert NAME.casefold() not in text
    assert "müller" not in text


def test_missing_pii_gets_no_hash(demo_schema: LeadSchema) -> None:
    """A hash of an empty value would join every lead without an e-mail to every other."""
    row = lead_row(demo_schema, demo_lead(email="  ", full_name=None), KEY, RECEIVED)
    assert row["pii_hashes"] == {}


def test_attributes_keep_non_pii_values_as_json(demo_schema: LeadSchema) -> None:
    """Attributes are the fallback training row: all non-PII fields, JSON-safe."""
    lead = demo_lead(company_size=np.float64("nan"), form_fills=np.int64(3), sales_rating="hot")
    row = lead_row(demo_schema, lead, KEY, RECEIVED)
    attributes = row["attributes"]
    assert "lead_id" not in attributes
    assert attributes["page_views"] == 12.0
    assert attributes["company_size"] is None
    assert attributes["form_fills"] == 3 and type(attributes["form_fills"]) is int
    assert attributes["demo_requested"] is True
    assert attributes["sales_rating"] == "hot"  # stored for reports, never a model input
    assert attributes["created_at"] == "2026-05-01T12:00:00+00:00"
    assert "country" not in attributes  # absent fields stay absent rather than null


def test_created_at_comes_from_the_time_field_in_utc(demo_schema: LeadSchema) -> None:
    """Lead age and point-in-time joins use the CRM's creation time, normalised to UTC."""
    tokyo = timezone(timedelta(hours=9))
    row = lead_row(
        demo_schema, demo_lead(created_at=datetime(2026, 5, 1, 9, 0, tzinfo=tokyo)), KEY, RECEIVED
    )
    assert row["created_at"] == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)
    assert row["created_at"].utcoffset() == timedelta(0)
    assert row["updated_at"] == RECEIVED


@pytest.mark.parametrize(
    "value",
    ["2026-05-01T02:00:00+02:00", "2026-05-01T00:00:00Z", "2026-05-01T00:00:00"],
)
def test_created_at_is_read_from_iso_text(demo_schema: LeadSchema, value: str) -> None:
    """CSV imports carry times as text; naive ones are taken as UTC."""
    row = lead_row(demo_schema, demo_lead(created_at=value), KEY, RECEIVED)
    assert row["created_at"] == datetime(2026, 5, 1, tzinfo=UTC)


def test_created_at_from_a_pandas_timestamp(demo_schema: LeadSchema) -> None:
    """The demo funnel and bulk imports hand over pandas timestamps."""
    moment = pd.Timestamp("2026-05-01 00:00", tz="America/New_York")
    row = lead_row(demo_schema, demo_lead(created_at=moment), KEY, RECEIVED)
    assert row["created_at"] == datetime(2026, 5, 1, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "", math.nan, "absent"])
def test_created_at_falls_back_to_received_at(demo_schema: LeadSchema, value: Any) -> None:
    """A lead without a creation time was created, as far as we know, when it reached us."""
    lead = demo_lead(created_at=value)
    if value == "absent":
        del lead["created_at"]
    assert lead_row(demo_schema, lead, KEY, RECEIVED)["created_at"] == RECEIVED


def test_schema_without_time_field_uses_received_at() -> None:
    """Tenants need not have a creation time at all."""
    schema = parse_schema(
        "name: t\nfields:\n"
        "  - {name: lead_id, type: text, role: id}\n"
        "  - {name: plan, type: categorical}\n"
    )
    row = lead_row(schema, {"lead_id": 7, "plan": "pro"}, KEY, RECEIVED)
    assert row["created_at"] == RECEIVED
    assert row["lead_id"] == "7"
    assert (row["source"], row["lead_type"]) == (None, None)


def test_source_and_lead_type_are_extracted_as_labels(demo_schema: LeadSchema) -> None:
    """Reports group by these columns, so they hold the canonical category text."""
    row = lead_row(demo_schema, demo_lead(source=" referral ", lead_type="PQL"), KEY, RECEIVED)
    assert (row["source"], row["lead_type"]) == ("referral", "PQL")
    missing = lead_row(demo_schema, demo_lead(source="", lead_type=None), KEY, RECEIVED)
    assert (missing["source"], missing["lead_type"]) == (None, None)


def test_source_role_is_found_whatever_the_field_is_called() -> None:
    """Roles, not names, say which field is the source."""
    schema = parse_schema(
        "name: t\nfields:\n"
        "  - {name: crm_ref, type: text, role: id}\n"
        "  - {name: channel, type: categorical, role: source}\n"
        "  - {name: stage, type: categorical, role: lead_type}\n"
    )
    row = lead_row(schema, {"lead_id": "x", "channel": 3.0, "stage": "MQL"}, KEY, RECEIVED)
    assert (row["lead_id"], row["source"], row["lead_type"]) == ("x", "3", "MQL")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (math.inf, None),
        (np.float64(2.5), 2.5),
        (np.bool_(True), True),
        ("  ", None),
        (datetime(2026, 1, 2, 3, 4, tzinfo=UTC), "2026-01-02T03:04:00+00:00"),
    ],
)
def test_json_value_makes_values_json_safe(value: Any, expected: Any) -> None:
    """JSON columns cannot hold NaN, infinity, numpy scalars or datetimes."""
    converted = json_value(value)
    assert converted == expected
    assert type(converted) is type(expected)


def test_json_value_turns_any_numpy_nan_into_null() -> None:
    """NaN is not JSON: PostgreSQL refuses it in a json column, SQLite stores invalid JSON."""
    assert json_value(np.float32("nan")) is None
