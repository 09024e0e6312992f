"""Liveness and readiness, for load balancers and orchestrators, and metrics for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.auth import AUTH_RESPONSES, requires
from serving.deps import StateDep
from serving.limits import RATE_LIMIT_RESPONSES
from serving.metrics import MetricsDep
from store.api_keys import Scope

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "No model is loaded yet, or the server is at its limit"}},
)
def readyz(state: StateDep) -> JSONResponse:
    """200 once a model (the champion, or the rules score before one) is loaded, 503 before;
    with the version the registry's champion alias names, and whether the two differ (a
    version being loaded, or refused: `/v1/model` says why)."""
    registry = {"registry_champion": state.registry.champion, "stale": state.stale}
    if state.model is None:
        not_ready = {"status": "not ready", "detail": state.not_ready_reason}
        return JSONResponse(not_ready | registry, 503)
    return JSONResponse({"status": "ready", "model_version": state.model.version} | registry)


@router.get(
    "/metrics",
    dependencies=[requires(Scope.READ)],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Metrics"},
        **AUTH_RESPONSES,
        **RATE_LIMIT_RESPONSES,
    },
)
def get_metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format: requests by route template and status, latency, refusals by
    reason, scores by grade, outcome events posted, the served model's version."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
