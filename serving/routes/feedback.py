"""What the CRM posts back (outcomes) and reads (a lead's score and outcome)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime

from features.validation import in_utc
from serving import lead_views, services
from serving.auth import requires
from serving.deps import Lang, ScoresStored, StateDep, Zone
from serving.lead_card import BadCardOption, Formats, change_answer
from serving.routes import BODY_NOT_JSON, query_problem
from serving.schemas import (
    ErasedOut,
    IngestOut,
    LeadChangeOut,
    LeadHistoryOut,
    LeadOut,
    OutcomesIn,
)
from store.api_keys import Scope
from store.repository import MAX_ID

router = APIRouter(tags=["feedback"])
#: A time with its zone that has a UTC time (`9999-12-31T23:00-05:00` has none).
Moment = Annotated[AwareDatetime, AfterValidator(in_utc)]
#: The most scores one page of a lead's history holds.
MAX_HISTORY = 1_000


_CONFLICT = {409: {"description": "An `event_id` was used before with another payload."}}


@router.post(
    "/v1/outcomes",
    response_model=IngestOut,
    dependencies=[requires(Scope.INGEST), ScoresStored],
    responses=BODY_NOT_JSON | _CONFLICT,
)
def post_outcomes(body: OutcomesIn, state: StateDep) -> IngestOut | JSONResponse:
    """Record sales outcomes, all or none; posting the same events again is answered alike."""
    events = [event.model_dump() for event in body.outcomes]
    try:
        counts = services.record_outcomes(state.sessions, events, state.pii_key, datetime.now(UTC))
    except services.InvalidOutcomesError as exc:
        return _unprocessable(exc.problems)
    except services.ConflictingEventsError as exc:
        raise HTTPException(409, str(exc)) from exc
    return IngestOut(accepted=counts.accepted, duplicates=counts.duplicates)


@router.get(
    "/v1/leads/{lead_id:path}/history",
    response_model=LeadHistoryOut,
    dependencies=[requires(Scope.READ), ScoresStored],
    responses={404: {"description": "The store holds no such lead."}},
)
def get_lead_history(
    lead_id: str,
    state: StateDep,
    before: Annotated[
        Moment | None, Query(description="Only scores from before this time (with its zone).")
    ] = None,
    before_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ID,
            description="With `before`: scores at that time too, if written before this id.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY, description="Scores at most.")] = 100,
) -> dict:
    """The lead's scores, newest first: when, by which model version, score and grade. (Declared
    before the lead's own route, whose id may hold slashes: an id ending in `/history` reads
    as this one.)"""
    cursor = (before, before_id) if before is not None else None
    history = lead_views.lead_history(state.sessions, lead_id, cursor, limit)
    if history is None:
        raise HTTPException(404, f"unknown lead {lead_id!r}")
    return history


@router.get(
    "/v1/leads/{lead_id:path}/changes",
    response_model=LeadChangeOut,
    dependencies=[requires(Scope.READ), ScoresStored],
    responses={
        404: {"description": "The store holds no score of this lead."},
        422: {
            "description": "No score at or before `from` or `to` (or the lead has one score "
            "and no `from` can be found), `from` after `to`, or an unknown `lang` or `tz`."
        },
    },
)
def get_lead_changes(
    lead_id: str,
    state: StateDep,
    earlier: Annotated[
        Moment | None,
        Query(alias="from", description="The score in effect then (default: the one before)."),
    ] = None,
    later: Annotated[
        Moment | None, Query(alias="to", description="The score in effect then (default: now).")
    ] = None,
    lang: Lang = None,
    tz: Zone = None,
) -> dict | JSONResponse:
    """Why the lead's score moved between two of its scores: the points its data brought,
    field by field, and the points a new model version brought, adding up to the change."""
    try:
        formats = Formats.of(lang, None, tz)
        change = lead_views.lead_change(
            state.sessions, lead_id, earlier, later, state.model, state.versions
        )
    except (BadCardOption, lead_views.ScoreNotFoundError) as exc:
        return query_problem(exc.parameter, str(exc))
    if change is None:
        raise HTTPException(404, f"leadloop has no score of lead {lead_id!r}")
    return change_answer(change, formats)


@router.get(
    "/v1/leads/{lead_id:path}",
    response_model=LeadOut,
    dependencies=[requires(Scope.READ), ScoresStored],
    responses={404: {"description": "The store holds no such lead."}},
)
def get_lead(lead_id: str, state: StateDep) -> dict:
    """The lead's latest score with reasons, and its outcome if any."""
    view = lead_views.lead_view(state.sessions, lead_id)
    if view is None:
        raise HTTPException(404, f"unknown lead {lead_id!r}")
    return view


@router.delete(
    "/v1/leads/{lead_id:path}",
    response_model=ErasedOut,
    dependencies=[requires(Scope.ADMIN), ScoresStored],
    responses={404: {"description": "The store holds no such lead."}},
)
def erase_lead(lead_id: str, state: StateDep) -> ErasedOut:
    """Erase the lead everywhere (its row, scores and outcomes) and keep it out from now on."""
    erased = services.erase_lead(state.sessions, lead_id, state.pii_key, datetime.now(UTC))
    if erased is None:
        raise HTTPException(404, "unknown lead: nothing to erase")
    return ErasedOut(snapshots=erased.snapshots, outcomes=erased.outcomes)


def _unprocessable(problems: list[tuple[int, str, str]]) -> JSONResponse:
    """A 422 shaped like FastAPI's own validation errors, naming each bad field."""
    detail = [
        {"loc": ["body", "outcomes", index, field], "msg": message, "type": "value_error"}
        for index, field, message in problems
    ]
    return JSONResponse({"detail": detail}, status_code=422)
