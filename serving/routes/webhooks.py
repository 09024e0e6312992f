"""`GET /v1/webhooks/deliveries`: the webhooks owed to the CRM and how their attempts went."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving import webhooks
from serving.auth import requires
from serving.deps import ScoresStored, StateDep
from serving.schemas import WebhookDeliveriesOut
from store.api_keys import Scope
from store.repository import MAX_ID
from store.webhook_outbox import DeliveryStatus

router = APIRouter(tags=["webhooks"])
#: The most deliveries one page holds.
MAX_PAGE = 1_000


# `read`, like the lead it is about: a delivery shows a lead id, the event and how sending
# went, never the body, the URL or the secret. Scores just answered are stored first, so the
# deliveries they owe are listed.
@router.get(
    "/v1/webhooks/deliveries",
    response_model=WebhookDeliveriesOut,
    dependencies=[requires(Scope.READ), ScoresStored],
)
def get_webhook_deliveries(
    state: StateDep,
    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in it.")] = None,
    lead_id: Annotated[str | None, Query(description="Only the lead's deliveries.")] = None,
    before_id: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="Only deliveries older than this id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Deliveries at most.")] = 100,
) -> dict:
    """Webhook deliveries, newest first: event, lead, status, attempts and the last one's
    answer, a page at a time."""
    return webhooks.deliveries_page(state.sessions, status, lead_id, before_id, limit)
