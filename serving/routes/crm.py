"""Outcomes straight from the CRM: a HubSpot workflow webhook and a Salesforce outbound message,
mapped onto outcome events by the CRM mapping file and stored as `POST /v1/outcomes` stores
them, less the records that can never be stored: those are named, and answered as taken, so
that the CRM does not send them again for days (`serving.crm.ingest` decides all that).

A CRM that cannot send a header (Salesforce) presents its key as `?key=`, on these two routes
only; uvicorn's access log shows the query's values as `[redacted]`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, SecurityScopes
from pydantic import BaseModel, ConfigDict, Field

from serving.auth import CredentialsDep, check_key
from serving.crm import Note, NotMapped, PayloadError, hubspot, ingest, salesforce
from serving.crm.ingest import HOW_TO_SET_UP, OtherOrganization, StoreBusy, Stored
from serving.deps import ScoresStored, StateDep
from serving.limits import ErrorOut
from store.api_keys import KeyHolder, Scope

#: The key's query parameter, for a CRM that cannot send `Authorization` (Salesforce).
KEY_PARAMETER = "key"

api_key_in_query = APIKeyQuery(
    name=KEY_PARAMETER,
    scheme_name="APIKeyInQuery",
    description="The same key as `?key=<key>`, on the CRM routes only (Salesforce's outbound "
    "messages cannot send a header).",
    auto_error=False,
)


class _QueryRedacted(logging.Filter):
    """uvicorn's access log line, with every value of the query replaced: a CRM sends its key
    there, under the name the API reads or, by mistake, another (`api_key=`, `token=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _values_redacted(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def _values_redacted(target: str) -> str:
    """`target` (a path and its query) with each parameter's value replaced, its name kept."""
    path, mark, query = target.partition("?")
    if not mark:
        return target
    parameters = [
        f"{name}=[redacted]" if had_value else name
        for parameter in re.split("[&;]", query)
        for name, had_value, _ in [parameter.partition("=")]
    ]
    return f"{path}?{'&'.join(parameters)}"


@asynccontextmanager
async def _keys_out_of_the_access_log(_app: FastAPI) -> AsyncIterator[None]:
    access_log = logging.getLogger("uvicorn.access")
    redacted = _QueryRedacted()
    access_log.addFilter(redacted)
    try:
        yield
    finally:
        access_log.removeFilter(redacted)


router = APIRouter(tags=["crm"], lifespan=_keys_out_of_the_access_log)


async def ingest_key(
    security_scopes: SecurityScopes,
    credentials: CredentialsDep,
    query_key: Annotated[str | None, Depends(api_key_in_query)],
    state: StateDep,
) -> KeyHolder:
    """The caller's key, from `Authorization: Bearer` or else from `?key=`."""
    if credentials is None and query_key:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=query_key)
    try:
        return await check_key(state, credentials, security_scopes.scopes)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        raise HTTPException(
            401,
            "a valid API key is required: send `Authorization: Bearer <key>`, or add "
            f"`?{KEY_PARAMETER}=<key>` to the URL (keys are made by `leadloop keys create`)",
            headers=exc.headers,
        ) from None


IngestKey = Security(ingest_key, scopes=[Scope.INGEST])


class LeftOutOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record: str = Field(description="The CRM's record: `deal 1234`, `Opportunity 006...`.")
    event_id: str | None = Field(description="The event it would have been, if it got that far.")
    reason: str


class CrmIngestOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(
        description="Distinct events of the request the store now holds as sent, whether they "
        "were new or sent before: a redelivery gets the same answer."
    )
    ignored: list[LeftOutOut] = Field(
        description="Records at a stage the mapping does not list: not outcomes."
    )
    skipped: list[LeftOutOut] = Field(
        description="Records that can never be stored as sent (no lead id, an unknown or "
        "erased lead, a time before the lead was created, an event stored before with other "
        "values...). The rest of the request is stored all the same."
    )
    dropped: list[LeftOutOut] = Field(
        description="Values left out of events stored all the same: an amount or reason that "
        "cannot be stored as sent (a negative amount, not a number, control characters)."
    )


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
_NOT_SET_UP = "CRM ingest is not set up for this CRM or record kind (LEADLOOP_CRM_MAPPING)"
_BUSY = "The store cannot take the events now (or the connection limit): the CRM retries"
HUBSPOT_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Not a HubSpot deal or contact (JSON)"},
    401: {
        "model": ErrorOut,
        "description": "No valid API key; or, with LEADLOOP_HUBSPOT_CLIENT_SECRET, no valid "
        "X-HubSpot-Signature-v3 signed within 5 minutes",
    },
    404: {"model": ErrorOut, "description": _NOT_SET_UP},
    503: {"model": ErrorOut, "description": _BUSY},
}


def _xml(description: str, example: bytes) -> dict[str, Any]:
    media = {"schema": {"type": "string"}, "example": example.decode()}
    return {"description": description, "content": {"text/xml": media}}


SALESFORCE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: _xml(
        "Taken (stored, or knowingly left out): Salesforce stops sending it",
        salesforce.ACKNOWLEDGEMENT,
    ),
    400: _xml(
        "A SOAP fault: not an outbound message (or an XML with a DTD)",
        salesforce.fault("the body is not well-formed XML", sender=True),
    ),
    403: {
        "description": "The API key lacks the ingest scope (JSON), or the message comes from "
        "another organization than LEADLOOP_SALESFORCE_ORGANIZATION_ID (a SOAP fault)",
        "content": _ERROR | {"text/xml": {"schema": {"type": "string"}}},
    },
    404: _xml(_NOT_SET_UP + ": a SOAP fault", salesforce.fault(HOW_TO_SET_UP, sender=False)),
    503: _xml(_BUSY + ": a SOAP fault", salesforce.fault("the store is busy", sender=False)),
}


def _body(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The request body of a route that reads its bytes itself, for its OpenAPI description."""
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


async def raw_body(request: Request) -> bytes:
    """The request's body as sent: HubSpot signs its bytes, Salesforce's is XML."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


@router.post(
    "/v1/crm/hubspot",
    response_model=CrmIngestOut,
    dependencies=[IngestKey, ScoresStored],
    responses=HUBSPOT_ANSWERS,
    openapi_extra=_body("application/json", {"type": "object"}),
)
def post_hubspot(request: Request, body: RawBody, state: StateDep) -> CrmIngestOut:
    """Take a HubSpot workflow webhook (a deal or contact with its properties): store its
    outcome if the mapping lists its stage; a stage it does not list is answered as ignored."""
    if state.crm.hubspot_secret is not None:
        _signed_by_hubspot(request, body, state.crm.hubspot_secret)
    now = datetime.now(UTC)
    try:
        stored = ingest.take_hubspot(state.sessions, state.crm, body, state.pii_key, now)
    except PayloadError as exc:
        raise HTTPException(400, str(exc)) from None
    except NotMapped as exc:
        raise HTTPException(404, str(exc)) from None
    except StoreBusy as exc:
        raise HTTPException(503, str(exc)) from None
    return _answer(stored)


@router.post(
    "/v1/crm/salesforce",
    response_class=Response,
    dependencies=[IngestKey, ScoresStored],
    responses=SALESFORCE_ANSWERS,
    openapi_extra=_body("text/xml", {"type": "string"}),
)
def post_salesforce(body: RawBody, state: StateDep) -> Response:
    """Take a Salesforce outbound message: store the outcome of each notification whose stage
    the mapping lists, then answer `<Ack>true</Ack>`; what is left out is logged."""
    now = datetime.now(UTC)
    try:
        ingest.take_salesforce(state.sessions, state.crm, body, state.pii_key, now)
    except PayloadError as exc:
        return _fault(400, str(exc))
    except OtherOrganization as exc:
        return _fault(403, str(exc))
    except NotMapped as exc:
        return _fault(404, str(exc))
    except StoreBusy as exc:
        return _fault(503, str(exc))
    return Response(salesforce.ACKNOWLEDGEMENT, media_type="text/xml")


def _signed_by_hubspot(request: Request, body: bytes, secret: bytes) -> None:
    """401 unless the request carries HubSpot's valid, recent v3 signature."""
    now, url = datetime.now(UTC), str(request.url)
    try:
        hubspot.check_signature(secret, request.method, url, body, request.headers, now)
    except hubspot.SignatureRefused as exc:
        challenge = {"WWW-Authenticate": hubspot.SIGNATURE_HEADER}
        raise HTTPException(401, f"HubSpot signature refused: {exc}", challenge) from None


def _answer(stored: Stored) -> CrmIngestOut:
    def out(notes: list[Note]) -> list[LeftOutOut]:
        return [LeftOutOut(record=n.record, event_id=n.event_id, reason=n.reason) for n in notes]

    return CrmIngestOut(
        accepted=stored.accepted,
        ignored=out(stored.ignored),
        skipped=out(stored.skipped),
        dropped=out(stored.dropped),
    )


def _fault(status: int, message: str) -> Response:
    body = salesforce.fault(message, sender=status < 500)
    return Response(body, status_code=status, media_type="text/xml")
