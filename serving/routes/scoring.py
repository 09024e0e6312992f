"""`POST /v1/scores`: the route marketing-automation tools call.

No `from __future__ import annotations` here: FastAPI must see the body's model, built at run
time from the lead schema, as a real annotation, not as the name of a local variable.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import SecurityScopes
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from features.schema import LeadSchema
from models.registry import LoadedScorer
from serving import services
from serving.auth import CredentialsDep, check_key
from serving.deps import served_model
from serving.metrics import Metrics
from serving.routes import BODY_NOT_JSON
from serving.schemas import REASONS, ScoresOut
from serving.state import AppState
from store.api_keys import Scope
from store.disqualified import PreviousDisqualification
from store.snapshot_writer import ScoredBatch, SnapshotWriter, StoreBusyError

#: Requests of up to this many leads are scored on the event loop, where a thread hop would cost
#: more than the scores (a score alone: tens of µs; with reasons, TreeSHAP: most of a
#: millisecond). Larger ones go to a thread, so that other requests are not held up.
IN_LOOP_LEADS = {False: 8, True: 1}


def scoring_router(scores_in: type[BaseModel]) -> APIRouter:
    """The scoring route for one lead schema (`scores_in` is the schema's request model)."""
    router = APIRouter(tags=["scoring"])

    @router.post("/v1/scores", response_model=ScoresOut, responses=BODY_NOT_JSON)
    async def post_scores(
        body: scores_in,  # type: ignore[valid-type]
        call: Annotated[ScoringCall, Security(scoring_call, scopes=[Scope.SCORE])],
        reasons: Annotated[bool, Query(description=REASONS)] = True,
    ) -> JSONResponse:
        """Score 1 to 1,000 leads; each score comes with a grade and, unless asked not to, its
        reasons."""
        leads = [lead.model_dump() for lead in body.leads]
        asked = reasons and body.reasons
        scoring = partial(
            services.score_leads,
            call.model,
            call.schema,
            leads,
            asked,
            datetime.now(UTC),
            call.disqualified,
        )
        # A large request in a thread: the event loop answers the others meanwhile.
        in_loop = len(leads) <= IN_LOOP_LEADS[asked]
        scored = scoring() if in_loop else await run_in_threadpool(scoring)
        await _hand_over(call.writer, scored.batch)
        call.metrics.count_scores(score["grade"] for score in scored.answer)
        # Answered as it is: the scores are built to `ScoresOut` (documented there, and checked
        # by the API tests), and validating them again costs a score alone a tenth of its time.
        return JSONResponse({"model_version": call.model.version, "scores": scored.answer})

    return router


@dataclass(frozen=True)
class ScoringCall:
    """What the scoring route needs, gathered by one dependency: FastAPI spends more on each
    dependency it resolves than a score alone costs."""

    model: LoadedScorer
    #: The service's lead schema: its phrases are the reasons' words.
    schema: LeadSchema
    writer: SnapshotWriter
    metrics: Metrics
    #: Whether sales disqualified a lead, or its company, before.
    disqualified: Callable[[Mapping[str, Any]], PreviousDisqualification | None]


async def scoring_call(
    security_scopes: SecurityScopes, credentials: CredentialsDep, request: Request
) -> ScoringCall:
    """The caller's key checked (401, 403), then the model served (503 before there is one)."""
    state: AppState = request.app.state.leadloop
    await check_key(state, credentials, security_scopes.scopes)
    return ScoringCall(
        served_model(state),
        state.schema,
        state.writer,
        request.app.state.metrics,
        state.previously_disqualified,
    )


async def _hand_over(writer: SnapshotWriter, batch: ScoredBatch) -> None:
    """Give the request's scores to the snapshot writer: at once if its queue has room, else
    waiting in a thread (never on the event loop) and, past the writer's wait, a 503."""
    if writer.offer(batch):
        return
    try:
        await run_in_threadpool(writer.submit, batch)
    except StoreBusyError as exc:
        raise HTTPException(503, str(exc)) from exc
