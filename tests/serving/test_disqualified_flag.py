"""A lead sales disqualified, or a new lead of the same company, comes back flagged when
marketing scores it again."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from serving.schemas import ScoresOut
from tests.support import TrainedSetup, api_client

CREATED = (datetime.now(UTC) - timedelta(days=3)).isoformat()


@pytest.fixture(scope="module")
def client(trained: TrainedSetup) -> Iterator[TestClient]:
    settings = trained.settings.model_copy(update={"disqualified_poll_seconds": 0.05})
    with api_client(settings) as running:
        yield running


def scores(client: TestClient, *leads: dict[str, Any]) -> list[dict[str, Any]]:
    answer = client.post("/v1/scores", json={"leads": list(leads)})
    assert answer.status_code == 200, answer.text
    return ScoresOut.model_validate(answer.json()).model_dump(mode="json")["scores"]


def disqualify(client: TestClient, lead_id: str, reason: str | None = "no budget") -> None:
    event = {
        "event_id": f"dq-{lead_id}",
        "lead_id": lead_id,
        "outcome": "disqualified",
        "occurred_at": datetime.now(UTC).isoformat(),
        "reason": reason,
    }
    assert client.post("/v1/outcomes", json={"outcomes": [event]}).status_code == 200


def flag_of(client: TestClient, lead: dict[str, Any]) -> dict[str, Any] | None:
    """The lead's flag once the service has seen the outcomes posted (it looks every 0.05 s;
    the deadline only stops a broken test)."""
    deadline = time.monotonic() + 30
    while True:
        flag = scores(client, lead)[0]["previously_disqualified"]
        if flag is not None or time.monotonic() > deadline:
            return flag
        time.sleep(0.05)


def lead(name: str, email: str | None) -> dict[str, Any]:
    return {"lead_id": name, "created_at": CREATED, "source": "webinar", "email": email}


def test_a_disqualified_lead_and_its_company_come_back_flagged(client: TestClient) -> None:
    company = f"acme-{uuid.uuid4().hex[:8]}.example"
    first = lead(f"dq-first-{company}", f"jane@{company}")
    assert scores(client, first)[0]["previously_disqualified"] is None
    disqualify(client, first["lead_id"], reason="too small, call jane@acme.com")
    flag = flag_of(client, first)
    assert flag is not None and flag["matched"] == "lead"
    assert flag["reason"] == "too small, call [email]"  # stored scrubbed
    colleague = lead(f"dq-colleague-{company}", f"Bob@{company.upper()}")
    same_company = flag_of(client, colleague)
    assert same_company is not None and same_company["matched"] == "email_domain"
    assert same_company["at"] == flag["at"]
    stranger = lead(f"dq-stranger-{company}", f"ann@other-{company}")
    assert scores(client, stranger)[0]["previously_disqualified"] is None


def test_free_mail_never_stands_for_a_company(client: TestClient) -> None:
    name = uuid.uuid4().hex[:8]
    first = lead(f"dq-gmail-{name}", f"{name}@gmail.com")
    scores(client, first)
    disqualify(client, first["lead_id"])
    assert flag_of(client, first) is not None
    other = lead(f"dq-gmail-other-{name}", f"other-{name}@gmail.com")
    assert scores(client, other)[0]["previously_disqualified"] is None


def test_a_company_that_bought_is_not_a_poor_fit(client: TestClient) -> None:
    company = f"bought-{uuid.uuid4().hex[:8]}.example"
    lost, won = lead(f"dq-a-{company}", f"a@{company}"), lead(f"dq-b-{company}", f"b@{company}")
    scores(client, lost, won)
    now = datetime.now(UTC).isoformat()
    events = [  # in one request: the service sees both outcomes or neither
        {"event_id": f"dq-{company}", "lead_id": lost["lead_id"], "outcome": "disqualified",
         "occurred_at": now},
        {"event_id": f"won-{company}", "lead_id": won["lead_id"], "outcome": "won",
         "occurred_at": now, "amount": 5000},
    ]  # fmt: skip
    assert client.post("/v1/outcomes", json={"outcomes": events}).status_code == 200
    assert flag_of(client, lost) is not None  # the service has seen both outcomes
    newcomer = lead(f"dq-c-{company}", f"c@{company}")
    assert scores(client, newcomer)[0]["previously_disqualified"] is None
