"""Limits on what one request may cost, enforced before routing: the body's size and read time
(413, 408) and each API key's request rate (429 with `Retry-After`).

Both are ASGI middleware, so a refused body is never buffered and a throttled key never reaches
the store. The limits of the connection itself (header size and time, idle keep-alive, the
connection cap) are the server's: `serving.server`.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Any

import anyio
from fastapi import HTTPException
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from store.api_keys import hash_key


class ErrorOut(BaseModel):
    detail: str


#: The answers any route may give under the limits, for its OpenAPI description.
LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    408: {
        "model": ErrorOut,
        "description": "The body was not received in time (connection closed)",
    },
    413: {"model": ErrorOut, "description": "The body is too large (connection closed)"},
    503: {
        "description": "The server is at its connection limit, or its store is not keeping "
        "up: retry shortly"
    },
}
#: The answer of a route that needs an API key, to a key over its rate.
RATE_LIMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorOut,
        "description": "The API key is over its rate limit",
        "headers": {
            "Retry-After": {
                "description": "Seconds until the key may make a request again",
                "schema": {"type": "integer"},
            }
        },
    }
}

#: Ends the connection with a refused body: the rest of it is never read, so the connection
#: cannot carry another request (and a client dripping bytes into it gets nothing more).
CLOSE = {"Connection": "close"}


class BodyRefused(HTTPException):
    """A body refused while it was being read; FastAPI answers it like any HTTPException."""


def body_too_large(max_bytes: int) -> BodyRefused:
    return BodyRefused(413, f"the request body exceeds {max_bytes:,} bytes", headers=CLOSE)


def body_too_slow(seconds: float) -> BodyRefused:
    return BodyRefused(408, f"the request body did not arrive within {seconds:g} s", headers=CLOSE)


class BodyLimits:
    """413 for a body over `max_bytes`, 408 for one not received `timeout` seconds after its
    headers: a declared `Content-Length` is judged before the app runs; a chunked body is
    counted, and timed, as the app reads it, and refused at the first byte too many."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _answer(body_too_large(self.max_bytes), scope, receive, send)
            return
        body = _BoundedBody(receive, self, anyio.current_time() + self.timeout)
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, send_noting_start)
        except BodyRefused as refused:  # read outside FastAPI's handlers (a mounted app)
            if started:
                raise
            await _answer(refused, scope, receive, send)


class _BoundedBody:
    """The request's `receive`, counting and timing the body until its last chunk."""

    def __init__(self, receive: Receive, limits: BodyLimits, deadline: float) -> None:
        self._receive = receive
        self.limits = limits
        self.deadline = deadline
        self.received = 0
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:  # later calls wait for a disconnect, which may take any time
            return await self._receive()
        remaining = self.deadline - anyio.current_time()
        if remaining <= 0:
            raise body_too_slow(self.limits.timeout)
        try:
            with anyio.fail_after(remaining):
                message = await self._receive()
        except TimeoutError:
            raise body_too_slow(self.limits.timeout) from None
        if message["type"] != "http.request":
            self.complete = True
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.limits.max_bytes:
            raise body_too_large(self.limits.max_bytes)
        self.complete = not message.get("more_body", False)
        return message


class TokenBuckets:
    """A token bucket per key: on average `per_minute` requests a minute, and up to `burst` at
    once after a pause. In memory: each process counts its own requests.

    At most `max_keys` buckets are kept, the least recently used dropped first (a dropped
    bucket is a full one), so a flood of made-up keys cannot grow the process. Not thread-safe:
    called from the event loop only.
    """

    def __init__(self, per_minute: int, burst: int, max_keys: int = 10_000) -> None:
        self.per_second = per_minute / 60
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """Take one of `key`'s tokens at `now` (seconds): 0.0 if there was one, else the
        seconds until there will be one (and nothing is taken)."""
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.per_second
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class RateLimited:
    """429 with `Retry-After` (whole seconds) for a request over its API key's rate.

    Requests are counted per presented key (by its hash), before the key is looked up: a
    throttled caller costs no query. Requests without a key are not counted: they reach only
    the open routes, which hold no data, or get their 401 without touching the store.
    """

    def __init__(self, app: ASGIApp, buckets: TokenBuckets) -> None:
        self.app = app
        self.buckets = buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _bearer_key(scope) if scope["type"] == "http" else None
        if key is not None:
            wait = self.buckets.take(hash_key(key), time.monotonic())
            if wait > 0:
                per_minute = round(self.buckets.per_second * 60)
                detail = (
                    f"this API key is over its rate limit ({per_minute} requests a minute, "
                    f"bursts of {self.buckets.burst}): retry after the Retry-After seconds"
                )
                retry_after = {"Retry-After": str(max(1, math.ceil(wait)))}
                await JSONResponse({"detail": detail}, 429, retry_after)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer_key(scope: Scope) -> str | None:
    """The key of `Authorization: Bearer <key>`, read as `serving.auth` reads it."""
    scheme, key = get_authorization_scheme_param(Headers(scope=scope).get("authorization"))
    return key if scheme.lower() == "bearer" and key else None


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _answer(refused: BodyRefused, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": refused.detail}, refused.status_code, refused.headers)
    await response(scope, receive, send)
