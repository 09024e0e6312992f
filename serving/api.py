"""The HTTP routes: parse, call one service function, map domain errors to status codes."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel

from models.registry import LoadedScorer
from reports.feed import reports_feed
from serving import services
from serving.schemas import AlertsOut, IngestOut, LeadOut, ModelOut, OutcomesIn, ScoresOut
from serving.state import AppState


def get_state(request: Request) -> AppState:
    return request.app.state.leadloop


def get_model(request: Request) -> LoadedScorer:
    model = get_state(request).model
    if model is None:
        raise HTTPException(503, "no champion model is loaded: run `make train`, then restart")
    return model


StateDep = Annotated[AppState, Depends(get_state)]
ModelDep = Annotated[LoadedScorer, Depends(get_model)]


def build_router(scores_in: type[BaseModel]) -> APIRouter:
    """Routes for one lead schema (`scores_in` is the schema's request model)."""
    router = APIRouter()

    @router.post("/v1/scores", response_model=ScoresOut, tags=["scoring"])
    def post_scores(body: scores_in, state: StateDep, model: ModelDep) -> dict:  # type: ignore[valid-type]
        """Score 1 to 1,000 leads; each score comes with a grade and its reasons."""
        leads = [lead.model_dump() for lead in body.leads]
        scores = services.score_leads(
            model, state.sessions, state.schema, leads, state.pii_key, datetime.now(UTC)
        )
        return {"model_version": model.version, "scores": scores}

    @router.post("/v1/outcomes", response_model=IngestOut, tags=["feedback"])
    def post_outcomes(body: OutcomesIn, state: StateDep) -> IngestOut | JSONResponse:
        """Record sales outcomes; an `event_id` already stored is counted as a duplicate."""
        events = [event.model_dump() for event in body.outcomes]
        try:
            counts = services.record_outcomes(state.sessions, events, datetime.now(UTC))
        except services.InvalidOutcomesError as exc:
            return _unprocessable(exc.problems)
        return IngestOut(accepted=counts.accepted, duplicates=counts.duplicates)

    @router.get("/v1/leads/{lead_id:path}", response_model=LeadOut, tags=["feedback"])
    def get_lead(lead_id: str, state: StateDep) -> dict:
        """The lead's latest score with reasons, and its outcome if any."""
        view = services.lead_view(state.sessions, lead_id)
        if view is None:
            raise HTTPException(404, f"unknown lead {lead_id!r}")
        return view

    @router.get("/v1/model", response_model=ModelOut, tags=["model"])
    def get_model_card(state: StateDep, model: ModelDep) -> dict:
        """The served model: version, training window and holdout metrics."""
        card = model.scorer.card
        return {
            "model_name": state.model_name,
            "model_version": model.version,
            "run_id": model.run_id,
            "grades": model.scorer.grades.to_dict(),
        } | {key: card[key] for key in ModelOut.model_fields if key in card}

    @router.get("/v1/alerts", response_model=AlertsOut, tags=["reports"])
    def get_alerts(state: StateDep) -> dict:
        """The alerts of the latest `leadloop report` (the same the dashboard shows)."""
        try:
            return reports_feed(state.reports_dir)
        except FileNotFoundError:
            raise HTTPException(404, "no reports yet: run `make report`") from None
        except (ValueError, KeyError):  # a report being rewritten by hand, or damaged
            raise HTTPException(
                503, "the latest reports cannot be read: rerun `make report`"
            ) from None

    @router.get("/reports", include_in_schema=False)
    def reports_home() -> RedirectResponse:
        # The dashboard links its reports relatively: it must be read from /reports/.
        return RedirectResponse("/reports/")

    @router.get("/healthz", tags=["operations"])
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @router.get("/readyz", tags=["operations"])
    def readyz(state: StateDep) -> JSONResponse:
        """200 once a model is loaded, 503 before."""
        if state.model is None:
            return JSONResponse({"status": "not ready", "detail": state.not_ready_reason}, 503)
        return JSONResponse({"status": "ready", "model_version": state.model.version})

    return router


def _unprocessable(problems: list[tuple[int, str, str]]) -> JSONResponse:
    """A 422 shaped like FastAPI's own validation errors, naming each bad field."""
    detail = [
        {"loc": ["body", "outcomes", index, field], "msg": message, "type": "value_error"}
        for index, field, message in problems
    ]
    return JSONResponse({"detail": detail}, status_code=422)
