"""FastAPI dependencies: what a route gets from the running service, as named types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request

from models.registry import LoadedScorer
from serving.state import AppState


# Coroutines, though they do not wait: FastAPI runs a plain function in its thread pool, a hop
# that costs a one-lead request more than the work.
async def get_state(request: Request) -> AppState:
    return request.app.state.leadloop


async def get_model(request: Request) -> LoadedScorer:
    return served_model(await get_state(request))


def served_model(state: AppState) -> LoadedScorer:
    """The model `state` serves; 503 before one is loaded."""
    if state.model is None:
        raise HTTPException(503, "no champion model is loaded: run `make train`, then restart")
    return state.model


def scores_stored(request: Request) -> None:
    """Before a route reads or changes what scoring stored: this process's queued scores are in
    the store (a lead scored a moment ago can be read back, closed or erased)."""
    state: AppState = request.app.state.leadloop
    if not state.writer.flush():
        raise HTTPException(503, "scores are waiting for the store: try again shortly")


StateDep = Annotated[AppState, Depends(get_state)]
#: How a lead's card (and the sentence of why its score moved) writes numbers and times.
Lang = Annotated[
    str | None,
    Query(
        max_length=35,
        description="Language of numbers and dates (`de`, `en-GB`); default: the browser's.",
    ),
]
Zone = Annotated[
    str | None, Query(max_length=64, description="Time zone of the times (`Europe/Paris`; UTC).")
]
ModelDep = Annotated[LoadedScorer, Depends(get_model)]
#: A route dependency: see `scores_stored`.
ScoresStored = Depends(scores_stored)
