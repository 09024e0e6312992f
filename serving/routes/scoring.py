"""`POST /v1/scores`: the route marketing-automation tools call.

No `from __future__ import annotations` here: FastAPI must see the body's model, built at run
time from the lead schema, as a real annotation, not as the name of a local variable.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from serving import services
from serving.auth import requires
from serving.deps import ModelDep, StateDep
from serving.metrics import MetricsDep
from serving.routes import BODY_NOT_JSON
from serving.schemas import REASONS, ScoresOut
from store.api_keys import Scope
from store.snapshot_writer import StoreBusyError


def scoring_router(scores_in: type[BaseModel]) -> APIRouter:
    """The scoring route for one lead schema (`scores_in` is the schema's request model)."""
    router = APIRouter(tags=["scoring"])

    @router.post(
        "/v1/scores",
        response_model=ScoresOut,
        dependencies=[requires(Scope.SCORE)],
        responses=BODY_NOT_JSON,
    )
    def post_scores(
        body: scores_in,  # type: ignore[valid-type]
        state: StateDep,
        model: ModelDep,
        metrics: MetricsDep,
        reasons: Annotated[bool, Query(description=REASONS)] = True,
    ) -> dict:
        """Score 1 to 1,000 leads; each score comes with a grade and, unless asked not to, its
        reasons."""
        leads = [lead.model_dump() for lead in body.leads]
        try:
            scores = services.score_leads(
                model, state.writer, leads, reasons and body.reasons, datetime.now(UTC)
            )
        except StoreBusyError as exc:
            raise HTTPException(503, str(exc)) from exc
        metrics.count_scores(score["grade"] for score in scores)
        return {"model_version": model.version, "scores": scores}

    return router
