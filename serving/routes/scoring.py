"""`POST /v1/scores`: the route marketing-automation tools call.

No `from __future__ import annotations` here: FastAPI must see the body's model, built at run
time from the lead schema, as a real annotation, not as the name of a local variable.
"""

from datetime import UTC, datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from serving import services
from serving.auth import requires
from serving.deps import ModelDep, StateDep
from serving.metrics import MetricsDep
from serving.routes import BODY_NOT_JSON
from serving.schemas import REASONS, ScoresOut
from store.api_keys import Scope
from store.snapshot_writer import ScoredBatch, SnapshotWriter, StoreBusyError

#: Requests of up to this many leads are scored on the event loop, where a thread hop would cost
#: more than the scores (a score alone: tens of µs; with reasons, TreeSHAP: most of a
#: millisecond). Larger ones go to a thread, so that other requests are not held up.
IN_LOOP_LEADS = {False: 8, True: 1}


def scoring_router(scores_in: type[BaseModel]) -> APIRouter:
    """The scoring route for one lead schema (`scores_in` is the schema's request model)."""
    router = APIRouter(tags=["scoring"])

    @router.post(
        "/v1/scores",
        response_model=ScoresOut,
        dependencies=[requires(Scope.SCORE)],
        responses=BODY_NOT_JSON,
    )
    async def post_scores(
        body: scores_in,  # type: ignore[valid-type]
        state: StateDep,
        model: ModelDep,
        metrics: MetricsDep,
        reasons: Annotated[bool, Query(description=REASONS)] = True,
    ) -> dict:
        """Score 1 to 1,000 leads; each score comes with a grade and, unless asked not to, its
        reasons."""
        leads = [lead.model_dump() for lead in body.leads]
        asked = reasons and body.reasons
        scoring = partial(services.score_leads, model, leads, asked, datetime.now(UTC))
        # A large request in a thread: the event loop answers the others meanwhile.
        in_loop = len(leads) <= IN_LOOP_LEADS[asked]
        scored = scoring() if in_loop else await run_in_threadpool(scoring)
        await _hand_over(state.writer, scored.batch)
        metrics.count_scores(score["grade"] for score in scored.answer)
        return {"model_version": model.version, "scores": scored.answer}

    return router


async def _hand_over(writer: SnapshotWriter, batch: ScoredBatch) -> None:
    """Give the request's scores to the snapshot writer: at once if its queue has room, else
    waiting in a thread (never on the event loop) and, past the writer's wait, a 503."""
    if writer.offer(batch):
        return
    try:
        await run_in_threadpool(writer.submit, batch)
    except StoreBusyError as exc:
        raise HTTPException(503, str(exc)) from exc
