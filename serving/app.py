"""The FastAPI application: built from `Settings`, with the store and model opened in lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version as package_version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.datastructures import State

from features.schema import load_schema
from models.registry import CHAMPION, LoadedScorer, mlflow_client
from serving.auth import AUTH_RESPONSES, KeyRequired
from serving.champion_watch import ChampionWatch
from serving.key_cache import KeyCache
from serving.limits import (
    LIMIT_RESPONSES,
    RATE_LIMIT_RESPONSES,
    BodyLimits,
    RateLimited,
    TokenBuckets,
)
from serving.metrics import Metrics, RecordMetrics
from serving.routes import feedback, model, operations, reports
from serving.routes.scoring import scoring_router
from serving.schemas import scores_request_model
from serving.settings import Settings
from serving.state import AppState
from store.api_keys import Scope
from store.db import make_engine, migrate, session_factory
from store.repository import training_frames
from store.snapshot_writer import SnapshotWriter
from training.fallback import FALLBACK_VERSION, fallback_scorer

log = logging.getLogger("leadloop.serving")

#: Where Swagger UI's and ReDoc's scripts and styles are served from (fastapi-offline ships
#: them): /docs and /redoc work without reaching a CDN.
DOCS_ASSETS = "/docs/assets"
_NO_MODEL = (
    "No model is loaded (no champion and no outcomes for the rules score yet), the store is "
    "not keeping up, or the server is at its connection limit"
)
#: Answers of routes that their own declarations leave out of the OpenAPI document.
ROUTE_ANSWERS: dict[tuple[str, str], dict[int, str]] = {
    ("post", "/v1/scores"): {503: _NO_MODEL},
    ("get", "/v1/model"): {503: _NO_MODEL},
    ("get", "/v1/alerts"): {
        404: "No report written yet: run `make report`",
        503: "The latest reports cannot be read, or the server is at its connection limit",
    },
}


def create_app(settings: Settings) -> FastAPI:
    """The API for `settings`; nothing is opened until the app starts."""
    schema = load_schema(settings.schema_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, create_folder=settings.store_folder_made)
        migrate(engine)
        # Until `leadloop report` writes there, /reports/ answers 404 rather than failing.
        settings.reports_dir.mkdir(parents=True, exist_ok=True)
        watch = ChampionWatch(
            mlflow_client(settings.mlflow_tracking_uri), settings.model_name, schema
        )
        sessions = session_factory(engine)
        writer = SnapshotWriter(
            settings.database_url,
            schema,
            settings.pii_key_bytes,
            capacity=settings.snapshot_queue,
            linger_seconds=settings.snapshot_linger_seconds,
            wait_seconds=settings.store_wait_seconds,
        )
        state = AppState(
            schema=schema,
            model_name=settings.model_name,
            pii_key=settings.pii_key_bytes,
            sessions=sessions,
            writer=writer,
            reports_dir=settings.reports_dir,
            registry=watch.view,
            keys=KeyCache(settings.key_cache_seconds),
        )
        app.state.leadloop = state
        await _first_model(state, watch, settings.model_load_timeout_seconds)
        _keep_out_of_full_collections()
        following = asyncio.create_task(_follow(state, watch, settings.model_poll_seconds))
        yield
        following.cancel()
        await asyncio.to_thread(writer.close)  # the requests have finished: store their scores
        engine.dispose()
        gc.unfreeze()  # an app started in a process that goes on (a test) leaves no garbage

    app = FastAPIOffline(
        title="leadloop",
        summary="Lead scores with reasons, learned from closed sales outcomes.",
        version=package_version("leadloop"),
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
    )
    app.state.metrics = metrics = Metrics(partial(_served_model, app.state, settings.model_name))
    # In front of routing, innermost first: the body's limits, each key's rate, then the count
    # of every answer, refusals included.
    app.add_middleware(
        BodyLimits, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout_seconds
    )
    if settings.rate_limit_per_minute:
        buckets = TokenBuckets(settings.rate_limit_per_minute, settings.rate_limit_burst)
        app.add_middleware(RateLimited, buckets=buckets)
    app.add_middleware(RecordMetrics, metrics=metrics)

    # Every route needs an API key but liveness, readiness and the API's description, which
    # hold no data (`operations` declares the key its /metrics needs).
    keyed = AUTH_RESPONSES | RATE_LIMIT_RESPONSES | LIMIT_RESPONSES
    app.include_router(scoring_router(scores_request_model(schema)), responses=keyed)
    for routes in (feedback, model, reports):
        app.include_router(routes.router, responses=keyed)
    app.include_router(operations.router, responses=LIMIT_RESPONSES)
    # What `leadloop report` wrote: the dashboard at /reports/ and each report beside it.
    report_files = StaticFiles(directory=settings.reports_dir, html=True, check_dir=False)
    app.mount("/reports/", KeyRequired(report_files, Scope.READ), name="reports")
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = _with_route_answers(app.openapi)  # type: ignore[method-assign]
    return app


def _with_route_answers(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """`openapi`, with the answers in ROUTE_ANSWERS that a route does not declare itself (they
    replace the limits' general description of the same status)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}

    def document() -> dict[str, Any]:
        generated = openapi()  # FastAPI's cached document: adding the answers again is a no-op
        for (method, path), answers in ROUTE_ANSWERS.items():
            responses = generated["paths"][path][method]["responses"]
            for status, description in answers.items():
                if str(status) not in responses or status in LIMIT_RESPONSES:
                    responses[str(status)] = {"description": description, "content": error}
        return generated

    return document


def _served_model(state: State, model_name: str) -> tuple[str, str | None]:
    """`model_name` and the version `state`'s service serves (None before one is loaded)."""
    served: AppState | None = getattr(state, "leadloop", None)
    model = served.model if served is not None else None
    return model_name, model.version if model is not None else None


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without echoing the input: it may be PII, or a NaN JSON cannot carry."""
    assert isinstance(exc, RequestValidationError)
    detail = [{key: e[key] for key in ("loc", "msg", "type")} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def _fallback(state: AppState) -> LoadedScorer | None:
    """The rules score from the store's closed leads, while there is no champion."""
    with state.sessions() as session:
        frames = training_frames(session)
    scorer = fallback_scorer(frames, state.schema, datetime.now(UTC))
    if scorer is None:
        return None
    log.warning("no champion model: serving the rules score (%s)", FALLBACK_VERSION)
    return LoadedScorer(scorer=scorer, version=FALLBACK_VERSION, run_id="")


async def _first_model(state: AppState, watch: ChampionWatch, timeout: float) -> None:
    """The champion, or the rules score while there is none; within `timeout` seconds of the
    registry, after which the service starts not ready and keeps looking."""
    try:
        loaded = await asyncio.wait_for(asyncio.to_thread(watch.check, None), timeout)
    except TimeoutError:
        state.not_ready_reason = (
            f"the model registry did not answer within {timeout:g} s; the service keeps looking"
        )
        log.error(state.not_ready_reason)
        return
    view = watch.view
    if loaded is None and view.problem is not None:
        state.not_ready_reason = view.problem
    elif loaded is None and view.champion is not None:
        state.not_ready_reason = f"loading the champion failed: {view.refused[view.champion]}"
    else:
        state.model = loaded or _fallback(state)
        if state.model is None:
            state.not_ready_reason = (
                f"no {CHAMPION} version of {state.model_name!r} and no won and lost outcomes "
                "for a rules score yet: import or post outcomes, then run `make train`"
            )
    if state.model is None:
        log.error(state.not_ready_reason)


async def _follow(state: AppState, watch: ChampionWatch, every: float) -> None:
    """Swap in each new champion the registry names, for as long as the service runs."""
    while True:
        await asyncio.sleep(every)
        loaded = await asyncio.to_thread(watch.check, state.model)
        if loaded is not None:
            state.model = loaded  # one assignment: each request sees one model or the other
            gc.freeze()  # the new model too (the old one is freed as it is let go)


def _keep_out_of_full_collections() -> None:
    """Move every object made so far (the libraries, the model) out of the garbage collector's
    reach. They live as long as the process, and Python's full collection walks them all: with
    MLflow, pandas and scikit-learn loaded, about 350,000 objects and 180 ms on this machine,
    during which no request is answered. Collected once here, never again (what they let go
    is freed all the same, unless it holds a reference cycle)."""
    gc.collect()
    gc.freeze()
