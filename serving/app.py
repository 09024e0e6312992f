"""The FastAPI application: built from `Settings`, with the store and model opened in lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version as package_version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import State

from features.schema import load_schema
from models.registry import CHAMPION, LoadedScorer, mlflow_client
from serving.auth import AUTH_RESPONSES, KeyRequired
from serving.card_links import CardLinks
from serving.champion_watch import ChampionWatch
from serving.crm import CrmSetup
from serving.crm.mapping import load_crm_mapping
from serving.key_cache import KeyCache
from serving.lead_card import card_policy
from serving.limits import (
    LIMIT_RESPONSES,
    RATE_LIMIT_RESPONSES,
    BodyLimits,
    RateLimited,
    TokenBuckets,
)
from serving.metrics import Metrics, RecordMetrics
from serving.model_versions import ModelVersions
from serving.routes import card, crm, feedback, model, operations, reports, webhooks
from serving.routes.scoring import scoring_router
from serving.schemas import scores_request_model
from serving.settings import Settings
from serving.state import AppState
from serving.webhooks import WebhookDispatcher, webhook_target
from store.api_keys import Scope
from store.db import make_engine, migrate, session_factory
from store.disqualified import (
    DisqualifiedIndex,
    load_disqualified_index,
    refresh_disqualified_index,
)
from store.repository import training_frames
from store.snapshot_writer import SnapshotWriter
from training.fallback import FALLBACK_VERSION, fallback_scorer

log = logging.getLogger("leadloop.serving")
#: Seconds between two complete reads of the disqualified leads (changes are read every
#: `LEADLOOP_DISQUALIFIED_POLL_SECONDS`).
FULL_RELOAD_SECONDS = 600.0

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
    # Checked when the settings were read; loaded once here, like the schema.
    crm_setup = CrmSetup(
        mapping=load_crm_mapping(settings.crm_mapping) if settings.crm_mapping else None,
        hubspot_secret=(
            settings.hubspot_client_secret.get_secret_value().encode("utf-8")
            if settings.hubspot_client_secret is not None
            else None
        ),
        salesforce_organization_id=settings.salesforce_organization_id,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, create_folder=settings.store_folder_made)
        migrate(engine)
        # Until `leadloop report` writes there, /reports/ says how to make the reports.
        settings.reports_dir.mkdir(parents=True, exist_ok=True)
        registry = mlflow_client(settings.mlflow_tracking_uri)
        watch = ChampionWatch(registry, settings.model_name, schema)
        sessions = session_factory(engine)
        writer = SnapshotWriter(
            settings.database_url,
            schema,
            settings.pii_key_bytes,
            capacity=settings.snapshot_queue,
            linger_seconds=settings.snapshot_linger_seconds,
            wait_seconds=settings.store_wait_seconds,
            webhook_rules=settings.webhook_rules(),
        )
        state = AppState(
            schema=schema,
            model_name=settings.model_name,
            pii_key=settings.pii_key_bytes,
            sessions=sessions,
            writer=writer,
            reports_dir=settings.reports_dir,
            versions=ModelVersions(registry, settings.model_name),
            card_links=CardLinks(settings.card_key_bytes, settings.card_link_seconds),
            card_policy=card_policy(settings.card_frame_ancestors),
            public_url=str(settings.public_url).rstrip("/") if settings.public_url else None,
            registry=watch.view,
            keys=KeyCache(settings.key_cache_seconds),
            shared_email_domains=frozenset(
                d.strip().casefold() for d in settings.shared_email_domains
            ),
            crm=crm_setup,
        )
        app.state.leadloop = state
        await _first_model(state, watch, settings.model_load_timeout_seconds)
        _keep_out_of_full_collections()
        following = asyncio.create_task(_follow(state, watch, settings.model_poll_seconds))
        flagging = asyncio.create_task(
            _follow_disqualified(state, settings.disqualified_poll_seconds)
        )
        # Webhooks the stored scores owe the CRM, sent from the outbox in the background.
        target = webhook_target(settings)
        dispatcher = None
        if target is not None:
            dispatcher = WebhookDispatcher(sessions, target, settings.webhook_poll_seconds)
            dispatcher.start()
        yield
        following.cancel()
        flagging.cancel()
        if dispatcher is not None:
            await dispatcher.stop()
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
    # The card's routes first: a lead id may hold slashes, and `/v1/leads/{id}` takes any.
    app.include_router(card.router, responses=LIMIT_RESPONSES)
    for routes in (feedback, model, reports, webhooks):
        app.include_router(routes.router, responses=keyed)
    app.include_router(crm.router, responses=keyed)  # a key in `?key=` too: Salesforce
    app.include_router(operations.router, responses=LIMIT_RESPONSES)
    # What `leadloop report` wrote: the dashboard at /reports/ and each report beside it.
    report_files = reports.ReportFiles(directory=settings.reports_dir, html=True, check_dir=False)
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


async def _follow_disqualified(state: AppState, every: float) -> None:
    """Keep the disqualified leads and domains scores are flagged with as the store has them:
    every `every` seconds a look at how far the store has got (two indexed reads), and when it
    moved, a read of what changed; everything again every `FULL_RELOAD_SECONDS` (a lead sent
    again with another e-mail domain changes no outcome)."""
    loaded_whole = -math.inf
    while True:
        whole = time.monotonic() - loaded_whole > FULL_RELOAD_SECONDS
        try:
            state.disqualified = await asyncio.to_thread(_disqualified, state, whole)
            loaded_whole = time.monotonic() if whole else loaded_whole
        except SQLAlchemyError as exc:  # the store is out of reach: keep the last index
            log.warning("cannot read the disqualified leads: %s", exc)
        await asyncio.sleep(every)


def _disqualified(state: AppState, whole: bool) -> DisqualifiedIndex:
    with state.sessions() as session:
        if whole:
            return load_disqualified_index(session)
        return refresh_disqualified_index(session, state.disqualified)


def _keep_out_of_full_collections() -> None:
    """Move every object made so far (the libraries, the model) out of the garbage collector's
    reach. They live as long as the process, and Python's full collection walks them all: with
    MLflow, pandas and scikit-learn loaded, about 350,000 objects and 180 ms on this machine,
    during which no request is answered. Collected once here, never again (what they let go
    is freed all the same, unless it holds a reference cycle)."""
    gc.collect()
    gc.freeze()
