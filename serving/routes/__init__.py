"""The HTTP routes, one module per group: parse, call one service function, map domain errors
to status codes."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from serving.limits import ErrorOut

#: The answer of a route with a JSON body to one that is not JSON (FastAPI's own 400).
BODY_NOT_JSON: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "The body is not JSON"}
}


def query_problem(parameter: str, message: str) -> JSONResponse:
    """A 422 shaped like FastAPI's own, naming a query parameter a route's service refused."""
    detail = [{"loc": ["query", parameter], "msg": message, "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)
