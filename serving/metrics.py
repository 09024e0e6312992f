"""The service's Prometheus metrics, served at `GET /metrics`.

Requests are labelled by route template (`/v1/leads/{lead_id}`), never by path: a path may hold
a lead id. No metric carries a lead id, an email or a key. One registry per app, so each app
(and each test's) counts only its own requests; each process serves its own counts.
"""

from __future__ import annotations

import json
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import iter_route_contexts
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Statuses counted as rejected requests, by reason.
REJECTIONS = {
    401: "no_valid_key",
    403: "scope_missing",
    408: "body_too_slow",
    409: "event_conflict",
    413: "body_too_large",
    422: "invalid_input",
    429: "rate_limited",
}
#: From a single-lead score (~0.5 ms) to a 1,000-lead batch with reasons (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The label of a path no route matches (a scanner's guesses must not become label values).
UNMATCHED = "unmatched"
INGEST_ROUTE = "/v1/outcomes"

#: The name of the model to serve and the version served (None before one is loaded).
ServedModel = Callable[[], tuple[str, str | None]]


class Metrics:
    """What the service counts, in a registry of its own."""

    def __init__(self, served_model: ServedModel) -> None:
        self.registry = CollectorRegistry()
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        self.registry.register(_ServedModelCollector(served_model))
        self.requests = Counter(
            "leadloop_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadloop_http_request_duration_seconds",
            "Time from a request's headers to the end of its answer.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "leadloop_rejected_requests",
            "Requests refused, by status and reason.",
            ["status", "reason"],
            registry=self.registry,
        )
        self.scores = Counter(
            "leadloop_scores", "Leads scored, by grade.", ["grade"], registry=self.registry
        )
        self.outcomes = Counter(
            "leadloop_outcome_events",
            "Outcome events posted, as answered: accepted (stored now or before) or duplicate "
            "(repeated within its request).",
            ["result"],
            registry=self.registry,
        )

    def count_scores(self, grades: Iterable[str]) -> None:
        for grade, count in Tally(grades).items():
            self.scores.labels(grade).inc(count)

    def count_outcomes(self, answer: dict) -> None:
        self.outcomes.labels("accepted").inc(answer["accepted"])
        self.outcomes.labels("duplicate").inc(answer["duplicates"])

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status in REJECTIONS:
            self.rejected.labels(str(status), REJECTIONS[status]).inc()


class _ServedModelCollector(Collector):
    """`leadloop_model_info{model_name, version} 1` for the model served at scrape time (0,
    with version "none", while none is loaded)."""

    def __init__(self, served_model: ServedModel) -> None:
        self.served_model = served_model

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "leadloop_model_info",
            "The model served: 1 with its name and version, 0 while none is loaded.",
            labels=["model_name", "version"],
        )
        name, version = self.served_model()
        info.add_metric([name, version or "none"], 1 if version else 0)
        yield info


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


class RecordMetrics:
    """Count and time every HTTP request, including those the limits refuse before routing."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: list[tuple[str, BaseRoute]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: the server's error handler answers 500
        ingest_answer: list[bytes] | None = None

        async def send_observed(message: Message) -> None:
            nonlocal status, ingest_answer
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 200 and self._template(scope) == INGEST_ROUTE:
                    ingest_answer = []
            elif ingest_answer is not None:
                ingest_answer.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            route = self._template(scope)
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
            if ingest_answer is not None:
                # The outcomes route answers its counts ({"accepted": n, "duplicates": m}).
                self.metrics.count_outcomes(json.loads(b"".join(ingest_answer)))

    def _template(self, scope: Scope) -> str:
        """The template of the route that answered (or would have answered) the request."""
        route = scope.get("route")
        if route is not None and not isinstance(route, Mount):
            return getattr(route, "path_format", UNMATCHED)
        if self._templates is None:
            self._templates = _route_templates(scope["app"].routes)
        for template, candidate in self._templates:
            if candidate.matches(scope)[0] is not Match.NONE:
                return template
        return UNMATCHED


def _route_templates(routes: list[BaseRoute]) -> list[tuple[str, BaseRoute]]:
    templates = []
    for context in iter_route_contexts(routes):
        route = context.original_route
        template = route.path if isinstance(route, Mount) else getattr(route, "path_format", "")
        templates.append((template or UNMATCHED, route))
    return templates
