"""`serve`: the HTTP API."""

from __future__ import annotations

import typer

from serving.cli.common import reported_errors, start


def serve(
    host: str = typer.Option("127.0.0.1", metavar="HOST", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, metavar="PORT", help="Port to listen on."),
) -> None:
    """Serve the champion model over HTTP (FastAPI + uvicorn), within the LEADLOOP_* limits."""
    settings = start()
    import uvicorn

    from serving.app import create_app
    from serving.server import uvicorn_config

    with reported_errors():
        api = create_app(settings)
    uvicorn.Server(uvicorn_config(api, settings, host, port)).run()
