"""`serve`: the HTTP API."""

from __future__ import annotations

import typer

from serving.cli.common import reported_errors, start


def serve(
    host: str = typer.Option("127.0.0.1", metavar="HOST", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, metavar="PORT", help="Port to listen on."),
    workers: int = typer.Option(
        1, min=1, max=64, metavar="N", help="Processes serving the port (one per core scales)."
    ),
) -> None:
    """Serve the champion model over HTTP (FastAPI + uvicorn), within the LEADLOOP_* limits."""
    settings = start()
    from serving.app import create_app
    from serving.server import serve as run_server
    from serving.settings import KeyFileError

    # A bad schema, store or key file is refused before any worker starts.
    with reported_errors(KeyFileError):
        settings.card_key_bytes  # noqa: B018 (read for its check; each worker reads it again)
        run_server(create_app(settings), settings, host, port, workers)
