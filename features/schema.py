"""The lead schema: one declarative file that says what a tenant's leads look like.

Training, request validation and the reports all read the same schema, so a field's meaning is
written down once. The rule that matters most lives here: a field that is not known at scoring
time (sales fills it in later) is never a model input, whatever its role says.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from string import Formatter
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

BUNDLED_SCHEMA_DIR = Path(__file__).parent / "schemas"
DEMO_SCHEMA_PATH = BUNDLED_SCHEMA_DIR / "demo_b2b.yaml"


class FieldType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    TEXT = "text"


class FieldRole(StrEnum):
    ID = "id"
    TIME = "time"
    SOURCE = "source"
    LEAD_TYPE = "lead_type"
    FEATURE = "feature"
    PII = "pii"
    #: Kept with the lead (dates, free text, CRM bookkeeping) but never a model input.
    ATTRIBUTE = "attribute"


#: Roles whose fields feed the model (when known at scoring time).
MODEL_ROLES = frozenset({FieldRole.SOURCE, FieldRole.LEAD_TYPE, FieldRole.FEATURE})
#: Types a tree model can take as they are; text and timestamps need a derived feature first.
MODEL_TYPES = frozenset({FieldType.NUMERIC, FieldType.CATEGORICAL, FieldType.BOOLEAN})


class SchemaError(ValueError):
    """The schema file is missing, unreadable or inconsistent."""


def _text_keys(values: object) -> object:
    """YAML reads `true:` and `12:` as a boolean and a number: as phrase keys they are text."""
    if isinstance(values, dict):
        return {str(k).lower() if isinstance(k, bool) else str(k): v for k, v in values.items()}
    return values


class ReasonPhrases(BaseModel):
    """How a sales rep reads one field's reason: a phrase per value, per direction of its
    effect, and for a missing value. `{value}` in a phrase is the lead's value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: By category, or `true`/`false` for a boolean: "webinar" -> "Came from a webinar".
    values: Annotated[dict[str, str], BeforeValidator(_text_keys)] = {}
    #: When the field has no value: "Company size unknown" (plain text, no placeholder).
    missing: str | None = None
    #: Any value that raises the score, or lowers it: "{value} page views".
    raises: str | None = None
    lowers: str | None = None

    @model_validator(mode="after")
    def _check_placeholders(self) -> ReasonPhrases:
        """A phrase that loads is one every request can fill in: `{value}` (text) or nothing."""
        for phrase in [*self.values.values(), self.raises, self.lowers]:
            try:
                names = [name for _, name, _, _ in Formatter().parse(phrase or "")]
                (phrase or "").format(value="")
            except (ValueError, IndexError, KeyError, AttributeError) as exc:
                raise ValueError(
                    f"phrase {phrase!r}: the only placeholder is {{value}} ({exc})"
                ) from None
            if set(names) - {"value", None}:
                raise ValueError(f"phrase {phrase!r}: the only placeholder is {{value}}")
        return self


class LeadField(BaseModel):
    """One column of a lead, as the tenant's CRM knows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The column's name as the CRM spells it (spaces allowed: "Lead Source").
    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
    type: FieldType
    role: FieldRole = FieldRole.FEATURE
    known_at_scoring: bool = True
    description: str = ""
    monotone: Literal["increasing", "decreasing"] | None = None
    categories: tuple[str, ...] | None = None
    #: The smallest and largest value a numeric field may take (a count: minimum 0); the API
    #: refuses values outside them.
    minimum: float | None = None
    maximum: float | None = None
    #: The words a reason on this field is shown with (see `features.phrases`).
    phrases: ReasonPhrases | None = None
    #: A written reason to keep this field although the leakage guard flags it.
    accept_leak: str | None = Field(default=None, min_length=10)

    @model_validator(mode="after")
    def _check_consistency(self) -> LeadField:
        if self.role in MODEL_ROLES and self.known_at_scoring and self.type not in MODEL_TYPES:
            raise ValueError(
                f"field {self.name!r}: type {self.type} cannot feed the model; "
                "use numeric, categorical or boolean, or give it another role"
            )
        if self.monotone and self.type not in (FieldType.NUMERIC, FieldType.BOOLEAN):
            raise ValueError(f"field {self.name!r}: monotone needs a numeric or boolean field")
        if self.categories is not None and self.type is not FieldType.CATEGORICAL:
            raise ValueError(f"field {self.name!r}: categories only apply to categorical fields")
        bounded = self.minimum is not None or self.maximum is not None
        if bounded and self.type is not FieldType.NUMERIC:
            raise ValueError(f"field {self.name!r}: minimum and maximum need a numeric field")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"field {self.name!r}: minimum is above maximum")
        if self.phrases is not None:
            self._check_phrase_keys(set(self.phrases.values))
        return self

    def _check_phrase_keys(self, keys: set[str]) -> None:
        """Phrases for values the field can take: YAML reads an unquoted yes, no, on or off as
        a boolean, which would otherwise be a phrase no category ever matches."""
        if self.type is FieldType.BOOLEAN:
            wrong = keys - {"true", "false"}
        elif self.type is FieldType.CATEGORICAL:
            wrong = (
                keys & {"true", "false"} if self.categories is None else keys - {*self.categories}
            )
        else:
            wrong = set()
        if wrong:
            raise ValueError(
                f"field {self.name!r}: phrases for values it does not take: {sorted(wrong)} "
                "(quote a category YAML reads as a boolean: 'yes', 'no', 'on', 'off')"
            )

    @property
    def is_model_input(self) -> bool:
        return self.role in MODEL_ROLES and self.known_at_scoring


class LeadSchema(BaseModel):
    """A tenant's lead schema; `model_fields_in_order` is what the model may see."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = 1
    description: str = ""
    fields: tuple[LeadField, ...]

    @model_validator(mode="after")
    def _check_roles(self) -> LeadSchema:
        names = [f.name for f in self.fields]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicate field names: {', '.join(duplicated)}")
        for role in (FieldRole.ID, FieldRole.TIME, FieldRole.SOURCE, FieldRole.LEAD_TYPE):
            count = sum(f.role is role for f in self.fields)
            if count > 1:
                raise ValueError(f"at most one field may have role {role}, found {count}")
        if sum(f.role is FieldRole.ID for f in self.fields) != 1:
            raise ValueError("exactly one field must have role id")
        if not any(f.is_model_input for f in self.fields):
            raise ValueError("no field can feed the model (role feature/source/lead_type)")
        id_field = self.field_with_role(FieldRole.ID)
        if id_field is not None and id_field.type is not FieldType.TEXT:
            raise ValueError("the id field must have type text")
        return self

    @cached_property
    def by_name(self) -> dict[str, LeadField]:
        return {f.name: f for f in self.fields}

    @cached_property
    def model_fields_in_order(self) -> tuple[LeadField, ...]:
        """Fields the model sees, in a fixed order; never one unknown at scoring time."""
        return tuple(f for f in self.fields if f.is_model_input)

    @cached_property
    def pii_fields(self) -> tuple[LeadField, ...]:
        return tuple(f for f in self.fields if f.role is FieldRole.PII)

    @property
    def id_field(self) -> LeadField:
        field = self.field_with_role(FieldRole.ID)
        assert field is not None  # guaranteed by _check_roles
        return field

    def field_with_role(self, role: FieldRole) -> LeadField | None:
        return next((f for f in self.fields if f.role is role), None)

    def without_phrases(self) -> LeadSchema:
        """This schema with no reason phrases: the leads it describes, not how reasons read."""
        document = self.model_dump()
        for field in document["fields"]:
            field["phrases"] = None
        return LeadSchema.model_validate(document)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def parse_schema(text: str, origin: str = "<string>") -> LeadSchema:
    """Parse a schema from YAML text, naming the origin in any error."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemaError(f"{origin}: not valid YAML: {exc}") from exc
    try:
        return LeadSchema.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"{origin}: invalid lead schema:\n{exc}") from exc


def load_schema(path: Path) -> LeadSchema:
    """Read and validate a schema file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read lead schema {path}: {exc.strerror}") from exc
    return parse_schema(text, origin=str(path))


def save_schema(schema: LeadSchema, path: Path) -> None:
    """Write a schema file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema.to_yaml(), encoding="utf-8")
