"""FastAPI dependencies: what a route gets from the running service, as named types."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from models.registry import LoadedScorer
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
