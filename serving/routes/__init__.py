"""The HTTP routes, one module per group: parse, call one service function, map domain errors
to status codes."""

from __future__ import annotations

from typing import Any

from serving.limits import ErrorOut

#: The answer of a route with a JSON body to one that is not JSON (FastAPI's own 400).
BODY_NOT_JSON: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not JSON"}
}
