"""HubSpot's "Send a webhook" workflow action: its v3 request signature, and the deal or contact
it posts, turned into a leadloop outcome event.

A workflow's webhook POSTs the enrolled record as HubSpot's v1 object APIs return it: a deal as
`{"portalId", "dealId", "properties": {name: {"value", "timestamp", "versions"}}}`, a contact
as `{"portal-id", "vid", "properties": {name: {"value", "versions": [newest first]}}}` (see
`examples/crm/`). Pure functions: the request's parts and the time come in as values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from serving.crm import Candidate, MappedRecords, Note, NotMapped, PayloadError, iso_time
from serving.crm.mapping import HubSpotMapping, ObjectMapping

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
#: HubSpot's rule: a request signed longer ago than this is refused (it may be a replay).
MAX_SIGNATURE_AGE = timedelta(minutes=5)
#: The escapes HubSpot decodes in the URI before it signs it.
_SIGNED_ESCAPES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_SIGNED_ESCAPES), re.IGNORECASE)
#: The key of the portal (account) and of the record, per kind of record.
_KINDS = {"deal": ("portalId", "dealId"), "contact": ("portal-id", "vid")}


class SignatureRefused(PermissionError):
    """A request without a valid, recent HubSpot v3 signature."""


def signature(secret: bytes, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature: base64 of HMAC-SHA256 under the app's client secret of the
    method, the full URI (a few escapes decoded), the raw body and the timestamp header."""
    decoded = _ESCAPE.sub(lambda found: _SIGNED_ESCAPES[found.group().upper()], uri)
    source = method.encode() + decoded.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret, source, hashlib.sha256).digest()).decode()


def check_signature(
    secret: bytes,
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
) -> None:
    """Pass if `headers` carry HubSpot's v3 signature of this request, signed within
    `MAX_SIGNATURE_AGE` of `now`; else raise SignatureRefused saying why."""
    sent, timestamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if not sent or not timestamp:
        raise SignatureRefused(f"no {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers")
    signed_at = _time(timestamp) if timestamp.isascii() and timestamp.isdigit() else None
    if signed_at is None:
        raise SignatureRefused(f"{TIMESTAMP_HEADER} is not a time in milliseconds")
    if abs(now - signed_at) > MAX_SIGNATURE_AGE:
        raise SignatureRefused(
            f"signed at {signed_at:%Y-%m-%d %H:%M:%S} UTC: more than 5 minutes from this "
            "service's clock (a replay, or a clock to set right)"
        )
    # Behind a proxy that ends TLS the service sees http://; HubSpot signed the https://
    # address it was given. The scheme is no secret: the client secret is.
    uris = [uri, "https://" + uri.removeprefix("http://")] if uri.startswith("http://") else [uri]
    if not any(
        hmac.compare_digest(
            signature(secret, method, each, body, timestamp).encode(), sent.encode()
        )
        for each in uris
    ):
        raise SignatureRefused(
            f"{SIGNATURE_HEADER} does not match: another client secret, or the request was "
            "changed on its way"
        )


def parse_body(body: bytes) -> Any:
    """The JSON in `body`; PayloadError if there is none."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # a UnicodeDecodeError is a ValueError
        raise PayloadError(f"the body is not JSON: {exc}") from None


def outcome_records(payload: Any, mapping: HubSpotMapping) -> MappedRecords:
    """The outcome event a workflow webhook's deal or contact makes, if its stage is mapped;
    else a note saying why there is none. PayloadError if it is not a HubSpot deal or contact,
    NotMapped if the mapping has no section for its kind."""
    if not isinstance(payload, dict):
        raise PayloadError("the body is not a JSON object (a HubSpot deal or contact)")
    kind = next((kind for kind, (_, key) in _KINDS.items() if key in payload), None)
    if kind is None:
        raise PayloadError(
            "neither a HubSpot deal (no dealId) nor a contact (no vid): let the workflow's "
            "webhook send the record with its properties"
        )
    portal, object_id = (_hubspot_id(payload, key) for key in _KINDS[kind])
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        raise PayloadError("properties: missing, or not an object")
    section: ObjectMapping | None = getattr(mapping, kind)
    if section is None:
        raise NotMapped(f"the CRM mapping has no hubspot.{kind} section: add one to take {kind}s")
    record = f"{kind} {object_id}"
    stage, changed = _property(properties, section.stage)
    outcome = section.stages.get(stage) if stage is not None else None
    if outcome is None:
        why = f"{section.stage} {stage!r} is not in the mapping" if stage else "no stage value"
        return MappedRecords(ignored=[Note(record, why)])
    lead_id, _ = _property(properties, section.lead_id)
    if lead_id is None:
        return _skipped(record, f"no lead id: the {kind} has no {section.lead_id} value")
    occurred = _from_millis(changed) if changed is not None else None
    if section.occurred_at is not None:
        value, _ = _property(properties, section.occurred_at)
        if value is not None:
            occurred = _time(value)
            if occurred is None:
                return _skipped(record, f"{section.occurred_at} is not a time")
    if occurred is None:
        return _skipped(record, f"no time: {section.stage} carries no timestamp")
    # Checked with the outcome (`serving.crm.checked`): a bad one is left out, not the event.
    amount = _property(properties, section.amount)[0] if section.amount else None
    reason = _property(properties, section.reason)[0] if section.reason else None
    # The same change of stage, delivered again, is the same event; a real new change (the
    # stage left and reached again) has a new timestamp, and is a new one.
    stamp = changed if changed is not None else round(occurred.timestamp() * 1000)
    event_id = f"hubspot:{portal}:{kind}:{object_id}:{section.stage}:{stage}:{stamp}"
    event = {
        "event_id": event_id,
        "lead_id": lead_id,
        "outcome": outcome.value,
        "occurred_at": occurred,
        "amount": amount,
        "reason": reason,
    }
    return MappedRecords(candidates=[Candidate(record, event)])


def _skipped(record: str, reason: str) -> MappedRecords:
    return MappedRecords(skipped=[Note(record, reason)])


def _hubspot_id(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError(f"{key}: missing, or not a HubSpot id (a whole number)")
    return value


def _property(properties: dict[str, Any], name: str) -> tuple[str | None, int | None]:
    """A property's value (None when empty or absent), and when it took that value
    (milliseconds since 1970, None if the payload does not say)."""
    found = properties.get(name)
    if found is None:
        return None, None
    if not isinstance(found, dict):
        raise PayloadError(f"properties.{name}: not a HubSpot property (value and versions)")
    value = found.get("value")
    if isinstance(value, bool) or not isinstance(value, str | int | float | None):
        raise PayloadError(f"properties.{name}.value: not text or a number")
    versions = found.get("versions")
    if versions is not None and not isinstance(versions, list):
        raise PayloadError(f"properties.{name}.versions: not a list of versions")
    text = None if value is None or value == "" else str(value)
    if _is_millis(found.get("timestamp")):  # a deal's property carries its time
        return text, found["timestamp"]
    # A contact's property, only its versions: newest first, perhaps with earlier spells of
    # the same value (the latest is the current one).
    spells = [
        version.get("timestamp")
        for version in versions or []
        if isinstance(version, dict) and version.get("value") == value
    ]
    stamps = [stamp for stamp in spells if _is_millis(stamp)]
    return text, max(stamps) if stamps else None


def _is_millis(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**15


def _from_millis(millis: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _time(value: str) -> datetime | None:
    """A HubSpot date or datetime property: milliseconds since 1970 (its API's form) or ISO."""
    if value.isascii() and value.isdigit():
        return _from_millis(int(value)) if len(value) <= 15 else None
    return iso_time(value)
