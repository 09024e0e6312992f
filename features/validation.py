"""Validate incoming leads against the lead schema.

The request model is built from the schema, so the API accepts exactly the tenant's fields:
an unknown field or a value of the wrong type is refused with the field named, while a missing
value is fine (the model scores it through its missing-value branches).

What is accepted is also what the rest of the loop can live with: every stored value is read
back by training and the reports, so a value they cannot hold is refused here rather than
found there. Times lie between `EARLIEST_TIME` and a little after now (a lead from the year
3000 would be the newest lead of every later training window); ids carry no control
characters (a newline makes an id no URL can name, a NUL is refused by PostgreSQL); numbers
are numbers, not booleans, and within the schema's declared `minimum` and `maximum`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
)

from features.schema import FieldRole, FieldType, LeadField, LeadSchema

#: The request key that carries a lead's id, whatever the schema's id field is called.
LEAD_ID_KEY = "lead_id"
MAX_TEXT_LENGTH = 2_000
MAX_ID_LENGTH = 200
MAX_CATEGORY_LENGTH = 200
#: No CRM holds leads or outcomes older than this; an earlier time is a data error.
EARLIEST_TIME = datetime(1990, 1, 1, tzinfo=UTC)
#: How far ahead of the service's clock a time may be: clock skew, and naive local times of
#: zones ahead of UTC (naive times are read as UTC).
FUTURE_TOLERANCE = timedelta(days=1)
#: Unicode's control characters (category Cc, fixed by the standard): U+0000-U+001F and
#: U+007F-U+009F. Free text keeps line breaks and tabs. Regular expressions, not a loop over
#: characters: every string field of every request passes here.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Surrogates (category Cs): JSON's "\ud800" decodes to one, which UTF-8 cannot carry.
_SURROGATE = re.compile("[\ud800-\udfff]")


def in_utc(moment: datetime) -> datetime:
    """`moment` in UTC (naive read as UTC), if it has a UTC time: 9999-12-31T23:00-05:00 has
    none, and a store converting it would fail."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("has no UTC time: it lies beyond the calendar's ends") from None


def in_time_range(moment: datetime, tolerance: timedelta = FUTURE_TOLERANCE) -> datetime:
    """`moment` if it lies between `EARLIEST_TIME` and now + `tolerance` (naive read as UTC)."""
    latest = datetime.now(UTC) + tolerance
    try:
        utc: datetime | None = in_utc(moment)
    except ValueError:
        utc = None
    if utc is None or not EARLIEST_TIME <= utc <= latest:
        raise ValueError(
            f"must lie between {EARLIEST_TIME:%Y-%m-%d} and {latest:%Y-%m-%d %H:%M} UTC"
        )
    return moment


def has_control_characters(value: str) -> bool:
    return _CONTROL.search(value) is not None


def no_control_characters(value: str) -> str:
    """`value` if it holds no control character (ids, categories)."""
    if has_control_characters(value):
        raise ValueError("must not contain control characters")
    return encodable(value)


def plain_text(value: str) -> str:
    """`value` if its only control characters are line breaks and tabs (free text)."""
    if _TEXT_CONTROL.search(value):
        raise ValueError("must not contain control characters other than line breaks and tabs")
    return encodable(value)


def encodable(value: str) -> str:
    """`value` if it is text UTF-8 can carry: JSON's "\ud800" decodes to a lone surrogate,
    which PostgreSQL cannot store."""
    if _SURROGATE.search(value):
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)")
    return value


def not_boolean(value: Any) -> Any:
    """Refuse a JSON `true`/`false` where a number is expected (Python's bool is an int)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


Number = Annotated[float, BeforeValidator(not_boolean)]
Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(no_control_characters),
]
LeadId = Identifier
Moment = Annotated[datetime, AfterValidator(in_time_range)]

_ANNOTATIONS: dict[FieldType, Any] = {
    FieldType.BOOLEAN: bool | None,
    FieldType.TIMESTAMP: Moment | None,
    FieldType.CATEGORICAL: Annotated[
        str, Field(max_length=MAX_CATEGORY_LENGTH), AfterValidator(no_control_characters)
    ]
    | None,
    FieldType.TEXT: Annotated[str, Field(max_length=MAX_TEXT_LENGTH), AfterValidator(plain_text)]
    | None,
}


def _annotation(lead_field: LeadField) -> Any:
    if lead_field.type is not FieldType.NUMERIC:
        return _ANNOTATIONS[lead_field.type]
    bounds = Field(ge=lead_field.minimum, le=lead_field.maximum)
    return Annotated[Number, bounds] | None


def lead_model(schema: LeadSchema) -> type[BaseModel]:
    """Build the pydantic model of one incoming lead under `schema`."""
    fields: dict[str, Any] = {LEAD_ID_KEY: (LeadId, Field(description="The CRM's lead id."))}
    for f in schema.fields:
        if f.role is FieldRole.ID:
            continue
        if f.name == LEAD_ID_KEY:
            raise ValueError(f"{LEAD_ID_KEY!r} is reserved for the id field")
        fields[f.name] = (_annotation(f), Field(default=None, description=f.description))
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)
    return create_model("LeadIn", __config__=config, **fields)
