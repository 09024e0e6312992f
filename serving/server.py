"""The HTTP server `leadloop serve` runs: uvicorn, with the connection limits from `Settings`.

uvicorn bounds idle kept-alive connections (`timeout_keep_alive`) and the connections and
requests in progress (`limit_concurrency`, beyond which it answers 503), but with its default
httptools parser it neither times a request's headers nor bounds their size: a connection that
sends nothing, or drips its headers, is held forever, and counts against the connection cap.
`GuardedHttpTools` adds both limits. The body's limits are the app's (`serving.limits`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.settings import Settings


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """uvicorn's configuration for serving `app` with `settings`' connection limits."""
    protocol = type(
        "GuardedHttpTools",
        (GuardedHttpTools,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "max_header_bytes": settings.max_header_bytes,
        },
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_connections,
        # SIGTERM: stop accepting, let requests in progress finish, then stop.
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request line and headers take
    longer than `header_timeout` seconds (408) or more than `max_header_bytes` (431).

    The clock starts when the connection opens, and again when a kept-alive connection's next
    request begins (its idle time before that is uvicorn's keep-alive timeout).
    """

    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        awaited = self._header_deadline
        super().data_received(data)
        if awaited is not None and awaited is self._header_deadline:  # the headers go on
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._headers_received()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_received()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._header_bytes = 0
        self._header_deadline = self.loop.call_later(
            self.header_timeout, self._refuse, 408, "Request Timeout"
        )

    def _headers_received(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _refuse(self, status: int, reason: str) -> None:
        self._headers_received()
        if self.transport.is_closing():
            return
        # A pipelined request still being answered owns the connection's output: just close.
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
                f"content-length: {len(reason)}\r\nconnection: close\r\n\r\n{reason}".encode()
            )
        self.transport.close()
