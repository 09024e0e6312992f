"""The lead card a CRM frames, opened by a signed link, and the links themselves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response

from serving import lead_views
from serving.auth import AUTH_RESPONSES, requires
from serving.card_links import BadCardLink, CardLinkRefused
from serving.deps import Lang, ScoresStored, StateDep, Zone
from serving.lead_card import BadCardOption, Formats, error_page, render_card
from serving.limits import RATE_LIMIT_RESPONSES
from serving.routes import BODY_NOT_JSON
from serving.schemas import CardLinkIn, CardLinkOut
from serving.state import AppState
from store.api_keys import Scope

router = APIRouter(tags=["card"])
_HTML = {"content": {"text/html": {}}}


@router.get(
    "/v1/leads/{lead_id:path}/card",
    response_class=HTMLResponse,
    response_model=None,
    dependencies=[ScoresStored],
    responses={
        200: _HTML,
        403: {"description": "The link is expired, altered or missing.", **_HTML},
        404: {"description": "The store holds no score of this lead.", **_HTML},
        422: {"description": "An unknown `lang` or `tz` (said in a page).", **_HTML},
    },
)
def get_card(
    lead_id: str,
    state: StateDep,
    expires: Annotated[str | None, Query(description="From the signed link.")] = None,
    signature: Annotated[str | None, Query(description="From the signed link.")] = None,
    lang: Lang = None,
    tz: Zone = None,
    accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The lead's card as a page for a CRM frame: score, grade, reasons, history, why it last
    moved. No API key: the link's signature (`leadloop card-link`, `POST .../card-link`)."""
    try:
        state.card_links.check(lead_id, expires, signature, datetime.now(UTC))
        formats = Formats.of(lang, accept_language, tz)
    except CardLinkRefused as exc:
        return _page(state, error_page(str(exc)), 403)
    except BadCardOption as exc:  # a page, not JSON: the CRM's frame shows it to the rep
        return _page(state, error_page(f"{exc.parameter}: {exc}"), 422)
    card = lead_views.lead_card(state.sessions, lead_id, state.schema, state.model, state.versions)
    if card is None:
        return _page(state, error_page("leadloop has no score of this lead yet."), 404)
    return _page(state, render_card(card, formats), 200)


@router.post(
    "/v1/leads/{lead_id:path}/card-link",
    response_model=CardLinkOut,
    dependencies=[requires(Scope.READ), ScoresStored],
    responses=AUTH_RESPONSES
    | RATE_LIMIT_RESPONSES
    | BODY_NOT_JSON
    | {404: {"description": "The store holds no score of this lead."}}
    | {422: {"description": "`expires_in` out of bounds."}},
)
def post_card_link(
    lead_id: str, state: StateDep, request: Request, body: CardLinkIn | None = None
) -> CardLinkOut:
    """A signed link to the lead's card, for the CRM to embed without an API key."""
    if not lead_views.has_score(state.sessions, lead_id):
        raise HTTPException(404, f"leadloop has no score of lead {lead_id!r}")
    base = state.public_url or str(request.base_url)
    try:
        link = state.card_links.link(base, lead_id, datetime.now(UTC), body and body.expires_in)
    except BadCardLink as exc:
        where = ("body", exc.field) if exc.field == "expires_in" else ("path", exc.field)
        problem = {"loc": where, "msg": str(exc), "type": "value_error"}
        raise RequestValidationError([problem]) from exc
    return CardLinkOut(url=link.url, expires_at=link.expires_at)


def _page(state: AppState, html: str, status: int) -> HTMLResponse:
    """A card page with the headers that keep it private and framed only by the CRM."""
    headers = {
        "Content-Security-Policy": state.card_policy,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(html, status_code=status, headers=headers)
