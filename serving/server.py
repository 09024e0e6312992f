"""The HTTP server `leadloop serve` runs: uvicorn, with the connection limits from `Settings`,
in one process or in several (`--workers N`) that share the port.

uvicorn bounds idle kept-alive connections (`timeout_keep_alive`) and the connections and
requests in progress (`limit_concurrency`, beyond which it answers 503), but with its default
httptools parser it neither times a request's headers nor bounds their size: a connection that
sends nothing, or drips its headers, is held forever, and counts against the connection cap.
`GuardedHttpTools` adds both limits. The body's limits are the app's (`serving.limits`).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from models.registry import mlflow_client
from serving.app import create_app
from serving.settings import Settings
from store.db import make_engine, migrate

log = logging.getLogger(__name__)
#: Tracking URI schemes of MLflow's database stores.
MLFLOW_DATABASES = frozenset({"sqlite", "postgresql", "mysql", "mssql"})
_PR_SET_PDEATHSIG = 1


def serve(app: FastAPI, settings: Settings, host: str, port: int, workers: int = 1) -> None:
    """Serve `app` until SIGTERM or SIGINT. With `workers` > 1, that many processes share the
    listening socket, each building its own app from the environment's settings (`worker_app`);
    the parent uses `settings` only to set up the stores they share."""
    config = uvicorn_config(app, settings, host, port, workers)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    prepare_stores(settings)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    # uvicorn stops every worker when one cannot start, and returns as if all went well.
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise SystemExit(STARTUP_FAILURE)


def prepare_stores(settings: Settings) -> None:
    """Create or migrate the store, and a database-backed MLflow store, once before the workers
    start: several processes setting up one new database at once race (two create the same
    table, and one of them fails to start)."""
    engine = make_engine(settings.database_url, create_folder=settings.store_folder_made)
    migrate(engine)
    engine.dispose()
    scheme = urlsplit(settings.mlflow_tracking_uri).scheme.split("+")[0]
    if scheme in MLFLOW_DATABASES:  # set up by its client on first use (a server sets up its own)
        mlflow_client(settings.mlflow_tracking_uri).search_experiments(max_results=1)


def uvicorn_config(
    app: Any, settings: Settings, host: str, port: int, workers: int = 1
) -> uvicorn.Config:
    """uvicorn's configuration for serving `app` with `settings`' connection limits.

    uvicorn starts each worker process from this configuration, pickled: the workers' app and
    protocol are named by import path (`worker_app`, `WorkerHttpTools`), and each worker reads
    the settings from the environment it inherits.
    """
    limits: dict[str, Any] = {
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections,
        # SIGTERM: stop accepting, let requests in progress finish, then stop.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }
    if workers > 1:
        return uvicorn.Config(
            f"{__name__}:{worker_app.__name__}",
            factory=True,
            workers=workers,
            http=f"{__name__}:{WorkerHttpTools.__name__}",
            host=host,
            port=port,
            **limits,
        )
    protocol = type(
        "GuardedHttpTools",
        (GuardedHttpTools,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "max_header_bytes": settings.max_header_bytes,
        },
    )
    return uvicorn.Config(app, host=host, port=port, http=protocol, **limits)


def worker_app() -> FastAPI:
    """The app of one `leadloop serve --workers N` process, which uvicorn imports by name: its
    settings and logging set up as every command's (from the environment the parent passed
    on), its header limits set on the worker's own protocol class. A worker stops (storing its
    queued scores) when the parent dies, even by SIGKILL, rather than serve on unsupervised.

    Any failure here exits with uvicorn's start-up failure code, which stops the parent: with
    another, uvicorn would start the worker again and again."""
    from serving.cli.common import start  # the commands' set-up; the CLI imports this module

    try:
        _stop_with_parent()
        settings = start()
        WorkerHttpTools.header_timeout = settings.header_timeout_seconds
        WorkerHttpTools.max_header_bytes = settings.max_header_bytes
        return create_app(settings)
    except Exception:
        log.exception("this worker cannot start")
        sys.exit(STARTUP_FAILURE)


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


class WorkerHttpTools(GuardedHttpTools):
    """`GuardedHttpTools` of a worker process, named by import path; `worker_app` sets its
    limits in each worker."""


def _stop_with_parent() -> None:
    """Ask Linux for a SIGTERM when this process's parent ends (`PR_SET_PDEATHSIG`)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        error = os.strerror(ctypes.get_errno())
        log.warning("this worker will not stop with its parent: prctl failed (%s)", error)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died while this one started
        os.kill(os.getpid(), signal.SIGTERM)
