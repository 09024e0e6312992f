"""Validate incoming leads against the lead schema.

The request model is built from the schema, so the API accepts exactly the tenant's fields:
an unknown field or a value of the wrong type is refused with the field named, while a missing
value is fine (the model scores it through its missing-value branches).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from features.schema import FieldRole, FieldType, LeadSchema

#: The request key that carries a lead's id, whatever the schema's id field is called.
LEAD_ID_KEY = "lead_id"
MAX_TEXT_LENGTH = 2_000
MAX_CATEGORY_LENGTH = 200

LeadId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

_ANNOTATIONS: dict[FieldType, Any] = {
    FieldType.NUMERIC: float | None,
    FieldType.BOOLEAN: bool | None,
    FieldType.TIMESTAMP: datetime | None,
    FieldType.CATEGORICAL: Annotated[str, Field(max_length=MAX_CATEGORY_LENGTH)] | None,
    FieldType.TEXT: Annotated[str, Field(max_length=MAX_TEXT_LENGTH)] | None,
}


def lead_model(schema: LeadSchema) -> type[BaseModel]:
    """Build the pydantic model of one incoming lead under `schema`."""
    fields: dict[str, Any] = {LEAD_ID_KEY: (LeadId, Field(description="The CRM's lead id."))}
    for f in schema.fields:
        if f.role is FieldRole.ID:
            continue
        if f.name == LEAD_ID_KEY:
            raise ValueError(f"{LEAD_ID_KEY!r} is reserved for the id field")
        fields[f.name] = (_ANNOTATIONS[f.type], Field(default=None, description=f.description))
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False)
    return create_model("LeadIn", __config__=config, **fields)
