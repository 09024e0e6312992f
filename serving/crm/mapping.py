"""Which CRM property holds what, and which CRM stage means which leadloop outcome.

One YAML file (`LEADLOOP_CRM_MAPPING`; `examples/crm/stages.yaml` documents one), read and
checked once at start-up. Stage values the file does not list are not outcomes: deals pass
through many stages, and only the ones it names are stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from store.outcomes import Outcome

#: Where a Salesforce record's time comes from when the mapping names no field of its own: the
#: outbound message must include it.
SALESFORCE_DEFAULT_TIME = "LastModifiedDate"


class CrmMappingError(ValueError):
    """The mapping file is missing, unreadable or invalid; the message names the key."""


def _stage_keys(stages: Any) -> Any:
    """Stage values as text: YAML reads an unquoted stage id (`1234567:`) as a number, kept as
    its digits. Any other key YAML reads as something else cannot be told back (`yes:` is
    True, `null:` None, `1.50:` 1.5, `2026-01-01:` a date): it is refused, named."""
    if not isinstance(stages, dict):
        return stages
    for key in stages:
        if isinstance(key, bool):
            raise ValueError(f"a stage read as the boolean {key}: quote it ('yes': ...)")
        if key is None:
            raise ValueError("a stage read as null (null, ~ or nothing): quote it ('null': ...)")
        if not isinstance(key, str | int):
            raise ValueError(
                f"a stage read as the {type(key).__name__} {key}: quote it, as the CRM writes it"
            )
    return {key if isinstance(key, str) else str(key): value for key, value in stages.items()}


def validation_problems(exc: ValidationError, whole: str = "the input") -> str:
    """Each error of `exc` as `where: what`, where the dotted path of the key at fault (or
    `whole` for the whole input), joined by `; `."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])) or whole}: {error['msg']}" for error in exc.errors()
    )


#: A HubSpot property's internal name, or a Salesforce field's API name.
PropertyName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
#: A Salesforce object's API name: `Opportunity`, `Lead`, `Deal__c`.
SObjectName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class ObjectMapping(BaseModel):
    """Where one kind of CRM record (a HubSpot deal, a Salesforce Opportunity) keeps what
    leadloop reads, and which of its stages are outcomes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_id: PropertyName = Field(
        description="The property (HubSpot) or field (Salesforce) that holds leadloop's lead id."
    )
    stage: PropertyName = Field(description="The property or field that holds the stage.")
    occurred_at: PropertyName | None = Field(
        default=None,
        description="The property or field with the time the stage was reached; unset (or "
        "empty on the record): HubSpot's own time of the stage's change, Salesforce's "
        "LastModifiedDate.",
    )
    amount: PropertyName | None = Field(default=None, description="The deal value, if any.")
    reason: PropertyName | None = Field(default=None, description="Why it was won or lost.")
    stages: Annotated[dict[str, Outcome], BeforeValidator(_stage_keys)] = Field(
        min_length=1, description="Stage value (as the CRM stores it) to leadloop outcome."
    )


class HubSpotMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    deal: ObjectMapping | None = None
    contact: ObjectMapping | None = None

    @model_validator(mode="after")
    def _something_mapped(self) -> HubSpotMapping:
        if self.deal is None and self.contact is None:
            raise ValueError("map deals, contacts or both")
        return self


class CrmMapping(BaseModel):
    """The whole file: a section per CRM, each optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hubspot: HubSpotMapping | None = None
    #: Keyed by the sObject type of the outbound message (`Opportunity`, `Lead`).
    salesforce: dict[SObjectName, ObjectMapping] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _some_crm(self) -> CrmMapping:
        if self.hubspot is None and self.salesforce is None:
            raise ValueError("map hubspot, salesforce or both")
        return self


def parse_crm_mapping(text: str, origin: str = "<string>") -> CrmMapping:
    """The mapping in YAML `text`; a CrmMappingError naming `origin` and each wrong key."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CrmMappingError(f"{origin}: not valid YAML: {exc}") from None
    try:
        return CrmMapping.model_validate(data)
    except ValidationError as exc:
        raise CrmMappingError(f"{origin}: {validation_problems(exc, 'the file')}") from None


def load_crm_mapping(path: Path) -> CrmMapping:
    """Read and check the mapping file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CrmMappingError(f"cannot read the CRM mapping {path}: {exc.strerror}") from None
    return parse_crm_mapping(text, origin=str(path))
