"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.deps import StateDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep) -> JSONResponse:
    """200 once a model (the champion, or the rules score before one) is loaded, 503 before."""
    if state.model is None:
        return JSONResponse({"status": "not ready", "detail": state.not_ready_reason}, 503)
    return JSONResponse({"status": "ready", "model_version": state.model.version})
