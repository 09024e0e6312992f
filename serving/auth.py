"""API keys on the HTTP API: `Authorization: Bearer <key>`, and the scope each route needs.

401 (with `WWW-Authenticate: Bearer`) without a valid key: none, a malformed header, an unknown
or a revoked key; 403 with a valid key that lacks the route's scope. Neither the key nor its
hash is ever logged or answered back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from pydantic import BaseModel
from starlette import types
from starlette.concurrency import run_in_threadpool

from serving.deps import StateDep
from serving.state import AppState
from store.api_keys import KeyHolder, Scope, hash_key, key_holder

api_key = HTTPBearer(
    scheme_name="APIKey",
    bearerFormat="ll_...",
    description="A key made by `leadloop keys create`; the route's scope, or `admin`.",
    # Our own 401 below: the same answer whether the header is missing, malformed or wrong.
    auto_error=False,
)
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(api_key)]


class AuthErrorOut(BaseModel):
    detail: str


#: The answers every protected route may give, for its OpenAPI description.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": AuthErrorOut, "description": "No API key, or one unknown or revoked"},
    403: {"model": AuthErrorOut, "description": "The API key lacks the route's scope"},
}


async def check_key(
    state: AppState, credentials: HTTPAuthorizationCredentials | None, scopes: list[str]
) -> KeyHolder:
    """The holder of the presented key, if it has every scope in `scopes`; else 401 or 403."""
    holder = None
    if credentials is not None:
        key_hash = hash_key(credentials.credentials)
        holder = state.keys.get(key_hash)
        if holder is None:
            holder = await run_in_threadpool(_stored_holder, state, key_hash)
    if holder is None:
        raise HTTPException(
            401,
            "a valid API key is required: send `Authorization: Bearer <key>` "
            "(keys are made by `leadloop keys create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    for needed in map(Scope, scopes):
        if not holder.allows(needed):
            raise HTTPException(403, f"this API key lacks the {needed.value!r} scope")
    return holder


def _stored_holder(state: AppState, key_hash: str) -> KeyHolder | None:
    with state.sessions() as session:
        holder = key_holder(session, key_hash)
    if holder is not None:
        state.keys.put(key_hash, holder)
    return holder


async def authorized(
    security_scopes: SecurityScopes, credentials: CredentialsDep, state: StateDep
) -> KeyHolder:
    """The caller's key, checked against the scopes the route asks for."""
    return await check_key(state, credentials, security_scopes.scopes)


def requires(scope: Scope) -> Any:
    """A route dependency: an API key with `scope` (or `admin`)."""
    return Security(authorized, scopes=[scope])


class KeyRequired:
    """`app`, a mounted ASGI app (which takes no FastAPI dependencies), behind an API key with
    `scope`. The 401 and 403 are the API's own: FastAPI's handler turns the HTTPException."""

    def __init__(self, app: types.ASGIApp, scope: Scope) -> None:
        self.app = app
        self.needed = scope

    async def __call__(self, scope: types.Scope, receive: types.Receive, send: types.Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            credentials = await api_key(request)
            state = request.app.state.leadloop
            await check_key(state, credentials, [self.needed])
        await self.app(scope, receive, send)
