"""Request and response models of the HTTP API (strict: unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, create_model

from features.schema import LeadSchema
from features.validation import Identifier, LeadId, Number, in_time_range, lead_model, plain_text
from store.outcomes import Outcome

MAX_BATCH = 1_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


REASONS = (
    "Whether each score comes with its reasons; without, only the score is computed (about a "
    "third of the time). Either this field or the query parameter set to false leaves them out."
)


def scores_request_model(schema: LeadSchema) -> type[BaseModel]:
    """`{"leads": [...], "reasons": true}` with 1 to 1,000 leads of the tenant's schema."""
    lead_in = lead_model(schema)
    return create_model(
        "ScoresIn",
        __base__=Strict,
        leads=(list[lead_in], Field(min_length=1, max_length=MAX_BATCH)),
        reasons=(bool, Field(default=True, strict=True, description=REASONS)),
    )


class ReasonOut(Strict):
    field: str
    value: Any = Field(description="The lead's value of the field (null when missing).")
    impact: float = Field(description="Contribution in score points (positive raises the score).")
    text: str | None = Field(
        default=None,
        description="The reason in a sales rep's words, from the lead schema's phrases "
        '("Came from a webinar"; without one, "Source is webinar"); null in scores stored '
        "before reasons had words.",
    )


class PreviouslyDisqualifiedOut(Strict):
    at: datetime = Field(description="When sales disqualified it.")
    reason: str | None = Field(description="Why, as the CRM said (e-mail and phone masked).")
    matched: Literal["lead", "email_domain"] = Field(
        description="`lead`: this lead was disqualified (its final outcome); `email_domain`: "
        "another lead of its e-mail domain was, and no lead of that domain was won (free-mail "
        "domains never match)."
    )


class ScoreOut(Strict):
    lead_id: str
    probability: float = Field(ge=0.0, le=1.0)
    score: int = Field(ge=0, le=100)
    grade: Literal["A", "B", "C", "D"]
    reasons: list[ReasonOut] | None = Field(description="Null when asked without reasons.")
    previously_disqualified: PreviouslyDisqualifiedOut | None = Field(
        description="Set when sales already disqualified this lead, or its company: marketing "
        "should not hand it over again. Null otherwise."
    )


class ScoresOut(Strict):
    model_version: str
    scores: list[ScoreOut]


class OutcomeIn(Strict):
    event_id: Identifier
    lead_id: LeadId
    outcome: Outcome = Field(
        description="A closing outcome, or a lifecycle step for the follow-up SLA."
    )
    occurred_at: Annotated[AwareDatetime, AfterValidator(in_time_range)] = Field(
        description="When it happened: not before the lead was created, nor in the future."
    )
    amount: Annotated[Number, AfterValidator(lambda v: round(v, 2))] | None = Field(
        default=None, ge=0, lt=1e12, description="Deal value; stored to the cent."
    )
    reason: Annotated[str, AfterValidator(plain_text)] | None = Field(default=None, max_length=500)
    sequence: int | None = Field(
        default=None,
        ge=0,
        lt=2**63,
        strict=True,
        description="The CRM's own order of its events, if it has one: of a lead's outcomes "
        "at the same `occurred_at`, the one with the larger sequence is its final state "
        "(without sequences: won over lost over disqualified, then the larger `event_id`).",
    )


class OutcomesIn(Strict):
    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=MAX_BATCH)


class IngestOut(Strict):
    accepted: int = Field(
        description="Distinct events of the request now stored as posted, whether they were "
        "new or sent before: a replay gets the same answer."
    )
    duplicates: int = Field(description="Events repeated within the request.")


class ErasedOut(Strict):
    """What an erasure removed besides the lead's own row."""

    snapshots: int = Field(description="Score snapshots removed.")
    outcomes: int = Field(description="Outcome and lifecycle events removed.")


class SnapshotOut(Strict):
    scored_at: datetime
    model_version: str
    probability: float
    score: int
    grade: str
    reasons: list[ReasonOut] | None = Field(description="Null when it was asked without reasons.")


class PastScoreOut(Strict):
    """One score of a lead's history: when, by which model, and what it was."""

    scored_at: datetime
    model_version: str
    probability: float = Field(ge=0.0, le=1.0)
    score: int = Field(ge=0, le=100)
    grade: Literal["A", "B", "C", "D"]


class LeadHistoryOut(Strict):
    lead_id: str
    scores: list[PastScoreOut] = Field(description="Newest first.")
    next_before: datetime | None = Field(
        description="Pass as `before`, with `next_before_id` as `before_id`, for the older "
        "scores; null when these are the first."
    )
    next_before_id: int | None = Field(
        description="The last score's id: scores of one time are paged by it."
    )


class FieldChangeOut(Strict):
    field: str
    old_value: Any
    new_value: Any
    points: float = Field(
        description="Score points the change brought, scored by the earlier score's model "
        "(its Shapley value among the lead's changes; 0 for a field the model does not read)."
    )


class LeadChangeOut(Strict):
    """Why a lead's score moved between two of its scores."""

    lead_id: str
    earlier: PastScoreOut
    later: PastScoreOut
    score_change: int = Field(description="`later.score - earlier.score`.")
    data_points: float | None = Field(
        description="The part of the change from the lead's data (the sum of `fields`' "
        "points); null when a model of the two can no longer be loaded."
    )
    model_points: float | None = Field(
        description="The part from a new model version: the later data scored by both models."
    )
    rounding_points: float | None = Field(
        description="What whole-point scores add: `data_points + model_points + "
        "rounding_points = score_change`, and it is less than 1 in size."
    )
    fields: list[FieldChangeOut] = Field(description="Fields whose value changed, largest first.")
    summary: str = Field(description="The change in one sentence, as the lead's card says it.")


class CardLinkIn(Strict):
    expires_in: int | None = Field(
        default=None,
        ge=60,
        strict=True,
        description="Seconds the link stays valid (default and most: the service's "
        "`LEADLOOP_CARD_LINK_SECONDS`).",
    )


class CardLinkOut(Strict):
    url: str = Field(description="The card's signed address: embed it in the CRM's frame.")
    expires_at: datetime


class OutcomeOut(Strict):
    event_id: str
    outcome: str
    occurred_at: datetime
    amount: float | None
    reason: str | None


class LeadOut(Strict):
    lead_id: str
    created_at: datetime
    source: str | None
    lead_type: str | None
    latest_score: SnapshotOut | None
    outcome: OutcomeOut | None = Field(description="The latest won, lost or disqualified.")
    handed_over: datetime | None = Field(None, description="First hand-over to sales.")
    contacted: datetime | None = Field(None, description="First contact by sales.")


class ModelOut(Strict):
    model_name: str
    model_version: str
    model_kind: str
    run_id: str
    trained_at: str
    training_window: dict[str, str]
    holdout_window: dict[str, str] = Field(description="Empty for the rules fallback.")
    grades: dict[str, float] = Field(description="Lowest probability of grades A, B and C.")
    n_train: int
    n_holdout: int
    metrics: dict[str, float]
    registry_champion: str | None = Field(
        description="The version the registry's champion alias names: another than "
        "`model_version` while it loads, or when it was refused."
    )
    refused_versions: dict[str, str] = Field(
        description="Versions the service would not serve, with why (cannot be loaded, or "
        "reads fields its lead schema lacks); the model before keeps serving."
    )


class AlertOut(Strict):
    kind: Literal[
        "source_stopped_converting",
        "outcome_feed_stalled",
        "feature_drift",
        "calibration_drift",
        "sla_breaches",
    ]
    subject: str = Field(description="The source, field or grade the alert is about.")
    since: str = Field(description="ISO date the problem started, as far as known.")
    evidence: str
    report: str = Field(description="File name of the report that explains it.")
    link: str = Field(description="Where the service serves that report.")


class AlertsOut(Strict):
    as_of: str
    alerts: list[AlertOut]
    kpis: dict[str, Any] = Field(description="The dashboard's shared figures.")


class WebhookDeliveryOut(Strict):
    """A webhook owed to the CRM, and how its attempts went."""

    id: int = Field(description="The body's `id`: the same on every attempt.")
    event: Literal["grade_changed", "score_crossed"]
    lead_id: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="`failed`: given up, after the last attempt allowed or a 410 Gone."
    )
    attempts: int = Field(description="Attempts made so far.")
    created_at: datetime = Field(description="When the lead was scored with the change.")
    next_attempt_at: datetime | None = Field(description="Null once delivered or given up.")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(
        description="The receiver's HTTP status at the last attempt; null: no answer."
    )
    last_error: str | None = Field(description="Why the last attempt failed, in a few words.")
    delivered_at: datetime | None


class WebhookDeliveriesOut(Strict):
    deliveries: list[WebhookDeliveryOut] = Field(description="Newest first.")
    next_before_id: int | None = Field(
        description="Pass as `before_id` for the older deliveries; null when these are the first."
    )
