"""What a lead becomes in the store: PII replaced by keyed hashes, the rest kept as attributes.

Pure functions: the caller passes the time and the PII key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from features.encoding import category_label, is_missing
from features.pii import email_domain, scrub
from features.schema import FieldRole, FieldType, LeadSchema
from features.validation import LEAD_ID_KEY


def hash_pii(value: Any, key: bytes) -> str:
    """Keyed HMAC-SHA256 of a normalised PII value: joinable, not reversible without the key."""
    # NFKC: the same name typed with composed or decomposed accents must hash alike.
    normalised = unicodedata.normalize("NFKC", str(value)).strip().casefold().encode("utf-8")
    return hmac.new(key, normalised, hashlib.sha256).hexdigest()


def json_value(value: Any) -> Any:
    """A JSON-safe copy of one field value (NaN and blanks become null, times ISO strings)."""
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if is_missing(value) or (isinstance(value, float) and math.isinf(value)):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def as_utc(value: Any, default: datetime) -> datetime:
    """Read a timestamp field as aware UTC; naive values are taken to be UTC already."""
    if is_missing(value):
        return default
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def lead_row(
    schema: LeadSchema, lead: Mapping[str, Any], pii_key: bytes, received_at: datetime
) -> dict[str, Any]:
    """The `leads` row of one validated lead (keys: schema field names plus `lead_id`)."""
    attributes, pii_hashes = {}, {}
    for f in schema.fields:
        if f.role is FieldRole.ID or f.name not in lead:
            continue
        value = lead[f.name]
        if f.role is FieldRole.PII:
            if not is_missing(value):
                pii_hashes[f.name] = hash_pii(value, pii_key)
        else:
            stored = json_value(value)
            if f.type is FieldType.TEXT and isinstance(stored, str):
                stored = scrub(stored)  # free text keeps no e-mail address or phone number
            attributes[f.name] = stored
    time_field = schema.field_with_role(FieldRole.TIME)
    return {
        "lead_id": str(lead[LEAD_ID_KEY]),
        "created_at": as_utc(lead.get(time_field.name) if time_field else None, received_at),
        "source": _role_value(schema, FieldRole.SOURCE, lead),
        "lead_type": _role_value(schema, FieldRole.LEAD_TYPE, lead),
        "attributes": attributes,
        "pii_hashes": pii_hashes,
        "email_domain_hash": domain_hash(schema, lead, pii_key),
        "updated_at": received_at,
    }


def email_domain_of(schema: LeadSchema, lead: Mapping[str, Any]) -> str | None:
    """The domain of the first of the lead's PII fields that holds an e-mail address."""
    for f in schema.pii_fields:
        domain = email_domain(lead.get(f.name))
        if domain is not None:
            return domain
    return None


def hash_domain(domain: str, pii_key: bytes) -> str:
    """The keyed hash of an e-mail domain, apart from any address's (`@` first: no value of
    another PII field hashes alike), so leads of one company can be told alike without keeping
    where anyone works."""
    return hash_pii("@" + domain, pii_key)


def domain_hash(schema: LeadSchema, lead: Mapping[str, Any], pii_key: bytes) -> str | None:
    domain = email_domain_of(schema, lead)
    return None if domain is None else hash_domain(domain, pii_key)


def _role_value(schema: LeadSchema, role: FieldRole, lead: Mapping[str, Any]) -> str | None:
    field = schema.field_with_role(role)
    return category_label(lead.get(field.name)) if field else None
