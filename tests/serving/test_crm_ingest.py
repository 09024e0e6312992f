"""Outcomes straight from the CRM: the HubSpot and Salesforce samples of `examples/crm/` go in
through `POST /v1/crm/hubspot` and `POST /v1/crm/salesforce` of a real service over a real
SQLite store, and come out as outcome events stored once each, whatever the redeliveries and
their order; what can never be stored is named and not sent back for a retry; a body that is
not the CRM's is a 400 naming what is wrong; a busy store is a 503 the CRM retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from typer.testing import CliRunner

from serving.app import create_app
from serving.cli import app as cli
from serving.crm.mapping import CrmMappingError, parse_crm_mapping
from serving.services import record_storable_outcomes
from serving.settings import Settings
from store import repository
from store.db import session_factory
from store.tables import OutcomeEvent
from tests.serving.test_outcome_ingest import erased_midway
from tests.support import PII_KEY, api_key, bearer, make_settings, open_store

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "crm"
MAPPING = EXAMPLES / "stages.yaml"
DEAL = EXAMPLES / "hubspot_deal_closedwon.json"
CONTACT = EXAMPLES / "hubspot_contact_lifecycle.json"
MESSAGE = EXAMPLES / "salesforce_outbound_message.xml"
#: When the samples' leads were created: before every change the samples report.
CREATED = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
SAMPLE_LEADS = ("crm-10001", "crm-10002", "crm-10003", "crm-10004", "crm-10005")
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
SECRET = "hubspot-app-client-secret"
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"


@dataclass
class Service:
    client: TestClient
    settings: Settings
    sessions: sessionmaker[Session]
    #: A key with the `ingest` scope only, as a CRM is given.
    key: str
    admin: str

    def hubspot(self, body: bytes | dict[str, Any], **headers: Any) -> Any:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = bearer(self.key) | {"content-type": "application/json"} | headers
        return self.client.post("/v1/crm/hubspot", content=content, headers=sent)

    def salesforce(self, body: bytes, key: str | None = None) -> Any:
        """As Salesforce posts: the key in the URL, no header of its own."""
        url = f"/v1/crm/salesforce?key={key or self.key}"
        headers = {"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        return self.client.post(url, content=body, headers=headers)

    def events(self) -> dict[str, dict[str, Any]]:
        """Every stored outcome event by its id."""
        with self.sessions() as session:
            rows = session.scalars(select(OutcomeEvent)).all()
            return {
                row.event_id: {
                    "lead_id": row.lead_id,
                    "outcome": row.outcome,
                    "occurred_at": row.occurred_at,
                    "amount": row.amount,
                    "reason": row.reason,
                }
                for row in rows
            }

    def lead(self, lead_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/v1/leads/{lead_id}", headers=bearer(self.admin))
        assert answer.status_code == 200, answer.text
        return answer.json()


def store_leads(sessions: sessionmaker[Session], *lead_ids: str) -> None:
    rows = [
        {
            "lead_id": lead_id,
            "created_at": CREATED,
            "source": None,
            "lead_type": None,
            "attributes": {},
            "pii_hashes": {},
            "updated_at": CREATED,
        }
        for lead_id in lead_ids
    ]
    with sessions.begin() as session:
        repository.upsert_leads(session, rows)


@contextmanager
def started(directory: Path, **changes: Any) -> Iterator[Service]:
    """A running service over a new store holding the samples' leads, set up with the sample
    mapping (and `changes` to its settings)."""
    settings = make_settings(directory).model_copy(update={"crm_mapping": MAPPING, **changes})
    sessions = open_store(settings.database_url)
    store_leads(sessions, *SAMPLE_LEADS)
    key, admin = api_key(settings, "ingest"), api_key(settings, "admin")
    try:
        with TestClient(create_app(settings)) as client:
            yield Service(client, settings, sessions, key, admin)
    finally:
        sessions.kw["bind"].dispose()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with started(tmp_path) as running:
        yield running


def millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def deal(
    lead_id: str = "crm-10001",
    stage: str = "closedwon",
    changed: datetime | None = None,
    deal_id: int | None = None,
) -> dict[str, Any]:
    """The deal sample, at `stage` since `changed`, for `lead_id`."""
    payload = json.loads(DEAL.read_text(encoding="utf-8"))
    properties = payload["properties"]
    if deal_id is not None:
        payload["dealId"] = deal_id
    values = {"leadloop_lead_id": lead_id, "dealstage": stage}
    for name, value in values.items():
        properties[name]["value"] = properties[name]["versions"][0]["value"] = value
    if changed is not None:
        stage_property = properties["dealstage"]
        stage_property["timestamp"] = stage_property["versions"][0]["timestamp"] = millis(changed)
    return payload


def notifications() -> list[tuple[str, dict[str, str]]]:
    """The Salesforce sample's notifications: each one's Id and fields."""
    root = ElementTree.fromstring(MESSAGE.read_bytes())  # the sample: trusted
    found = []
    for item in root.iter(f"{{{OUTBOUND}}}Notification"):
        sobject = item.find(f"{{{OUTBOUND}}}sObject")
        assert sobject is not None
        fields = {
            child.tag.removeprefix(f"{{{SOBJECT}}}"): child.text or ""
            for child in sobject
            if child.text
        }
        found.append((item.findtext(f"{{{OUTBOUND}}}Id") or "", fields))
    return found


def outbound_message(
    *items: tuple[str, dict[str, str]],
    organization: str = "00D5g000004SxTbEAK",
    sobject: str = "Opportunity",
) -> bytes:
    """An outbound message shaped as the sample is, with these notifications."""
    body = "".join(
        f"<Notification><Id>{notification_id}</Id>"
        f'<sObject xsi:type="sf:{sobject}" xmlns:sf="{SOBJECT}">'
        + "".join(f"<sf:{name}>{value}</sf:{name}>" for name, value in fields.items())
        + "</sObject></Notification>"
        for notification_id, fields in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f'<notifications xmlns="{OUTBOUND}">'
        f"<OrganizationId>{organization}</OrganizationId>"
        '<ActionId>04k5g000000KzQ2AAK</ActionId><SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://northwind.my.salesforce.com/services/Soap/c/62.0</EnterpriseUrl>"
        "<PartnerUrl>https://northwind.my.salesforce.com/services/Soap/u/62.0</PartnerUrl>"
        f"{body}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def acknowledged(response: Any) -> bool:
    """Whether `response` is the answer Salesforce stops on: `soapenv:Envelope` /
    `soapenv:Body` / `notificationsResponse` (outbound namespace) / `<Ack>true</Ack>`."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(response.content)
    ack = root.find(f"{{{SOAP}}}Body/{{{OUTBOUND}}}notificationsResponse/{{{OUTBOUND}}}Ack")
    return root.tag == f"{{{SOAP}}}Envelope" and ack is not None and ack.text == "true"


def fault(response: Any) -> tuple[str, str]:
    """The faultcode and faultstring of a SOAP fault answer."""
    assert response.headers["content-type"].startswith("text/xml"), response.text
    found = ElementTree.fromstring(response.content).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert found is not None, response.text
    return found.findtext("faultcode") or "", found.findtext("faultstring") or ""


# --- the samples, stored once each ----------------------------------------------------------


def test_the_hubspot_samples_are_stored_once_each_however_often_they_come(
    service: Service,
) -> None:
    deal_answers = [service.hubspot(DEAL.read_bytes()) for _ in range(3)]
    contact_answers = [service.hubspot(CONTACT.read_bytes()) for _ in range(2)]
    for answer in deal_answers + contact_answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 1, "ignored": [], "skipped": [], "dropped": []}
    deal_event = "hubspot:62515:deal:18339274923:dealstage:closedwon:1795190400000"
    contact_event = "hubspot:62515:contact:3234574:lifecyclestage:salesqualifiedlead:1795519200000"
    assert service.events() == {
        deal_event: {
            "lead_id": "crm-10001",
            "outcome": "won",
            "occurred_at": datetime(2026, 11, 20, 16, 0, tzinfo=UTC),
            "amount": 12000.0,
            "reason": None,
        },
        contact_event: {
            "lead_id": "crm-10002",
            "outcome": "handed_over",
            "occurred_at": datetime(2026, 11, 24, 11, 20, tzinfo=UTC),
            "amount": None,
            "reason": None,
        },
    }
    won = service.lead("crm-10001")["outcome"]
    assert (won["outcome"], won["amount"], won["event_id"]) == ("won", 12000.0, deal_event)
    assert service.lead("crm-10002")["handed_over"] == "2026-11-24T11:20:00Z"


def test_the_contact_s_name_email_and_phone_are_not_stored(service: Service) -> None:
    assert service.hubspot(CONTACT.read_bytes()).status_code == 200
    url = service.settings.database_url
    with create_engine(url).connect() as connection:
        tables = ["leads", "outcome_events", "score_snapshots"]
        dumped = " ".join(
            str(row)
            for table in tables
            for row in connection.execute(text(f"SELECT * FROM {table}"))
        )
    for personal in ("Lovelace", "ada.lovelace@example.com", "7946 0958"):
        assert personal not in dumped


def test_a_new_change_of_stage_is_a_new_event_and_arrival_order_does_not_matter(
    service: Service,
) -> None:
    """A deal lost, then re-opened and won: HubSpot's retries come in any order, the lead ends
    won, and each change is stored once."""
    lost_at, won_at = (
        datetime(2026, 11, 10, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 16, 0, tzinfo=UTC),
    )
    lost = deal(stage="closedlost", changed=lost_at)
    won = deal(stage="closedwon", changed=won_at)
    for payload in (won, lost, won, lost):
        answer = service.hubspot(payload)
        assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    stored = service.events()
    assert sorted(event["outcome"] for event in stored.values()) == ["lost", "won"]
    assert service.lead("crm-10001")["outcome"]["outcome"] == "won"


def test_the_salesforce_sample_is_acknowledged_and_stored_once_each(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="leadloop.crm")
    for _ in range(3):  # Salesforce resends what it thinks unanswered
        assert acknowledged(service.salesforce(MESSAGE.read_bytes()))
    assert service.events() == {
        "salesforce:04l5g00000YhP3qAAF": {
            "lead_id": "crm-10003",
            "outcome": "won",
            "occurred_at": datetime(2026, 11, 20, 16, 0, tzinfo=UTC),
            "amount": 12000.0,
            "reason": None,
        },
        "salesforce:04l5g00000YhP3rAAF": {
            "lead_id": "crm-10004",
            "outcome": "lost",
            "occurred_at": datetime(2026, 11, 19, 9, 15, tzinfo=UTC),
            "amount": 8000.0,
            "reason": None,
        },
    }
    assert service.lead("crm-10005")["outcome"] is None  # Prospecting is no outcome
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert ignored and "'Prospecting' is not in the mapping" in ignored[0]


def test_salesforce_notifications_split_and_reversed_end_alike(service: Service) -> None:
    """Each notification alone, newest first, then the whole message again; and a lead whose
    won (later) arrives before its lost (earlier) ends won."""
    for item in reversed(notifications()):
        assert acknowledged(service.salesforce(outbound_message(item)))
    assert acknowledged(service.salesforce(MESSAGE.read_bytes()))
    assert len(service.events()) == 2
    fields = {"Id": "0065g00000Q8mZZAAJ", "Leadloop_Lead_Id__c": "crm-10005", "Amount": "500.0"}
    won = (
        "04l5g00000ZZZ01AAF",
        fields | {"StageName": "Closed Won", "LastModifiedDate": "2026-11-22T10:00:00.000Z"},
    )
    lost = (
        "04l5g00000ZZZ02AAF",
        fields | {"StageName": "Closed Lost", "LastModifiedDate": "2026-11-21T10:00:00.000Z"},
    )
    assert acknowledged(service.salesforce(outbound_message(won)))
    assert acknowledged(service.salesforce(outbound_message(lost)))
    assert service.lead("crm-10005")["outcome"]["outcome"] == "won"
    assert len(service.events()) == 4


# --- what is not stored, and why ------------------------------------------------------------


def test_a_stage_the_mapping_does_not_list_is_ignored_with_200(service: Service) -> None:
    answer = service.hubspot(deal(stage="appointmentscheduled"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "accepted": 0,
        "ignored": [
            {
                "record": "deal 18339274923",
                "event_id": None,
                "reason": "dealstage 'appointmentscheduled' is not in the mapping",
            }
        ],
        "skipped": [],
        "dropped": [],
    }
    assert service.events() == {}


def test_hubspot_records_that_can_never_be_stored_are_named_and_not_retried(
    service: Service,
) -> None:
    """A 2xx, so HubSpot does not send them for three days; each says why."""
    erased = service.client.delete("/v1/leads/crm-10004", headers=bearer(service.admin))
    assert erased.status_code == 200
    cases = {
        "crm-nobody": "unknown lead 'crm-nobody'",
        "crm-10004": "erased on request",
        "crm-10003": "occurred_at is before the lead was created",
    }
    for number, (lead_id, says) in enumerate(cases.items()):
        early = CREATED - timedelta(days=30) if lead_id == "crm-10003" else None
        answer = service.hubspot(deal(lead_id, changed=early, deal_id=1000 + number))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["accepted"] == 0 and len(body["skipped"]) == 1, body
        assert says in body["skipped"][0]["reason"]
        assert body["skipped"][0]["record"] == f"deal {1000 + number}"
    no_lead_id = deal()
    del no_lead_id["properties"]["leadloop_lead_id"]
    answer = service.hubspot(no_lead_id).json()
    assert answer["skipped"][0]["reason"] == "no lead id: the deal has no leadloop_lead_id value"
    assert service.events() == {}


def test_a_loss_reason_is_kept_masked_and_cut_and_a_bad_amount_is_named(service: Service) -> None:
    lost = deal(stage="closedlost")
    reason = "Chose a rival; ask jane.doe@example.com why. " + "x" * 600
    lost["properties"]["closed_lost_reason"] = {"value": reason, "timestamp": 1795190400000}
    answer = service.hubspot(lost).json()
    assert (answer["accepted"], answer["skipped"], answer["dropped"]) == (1, [], [])
    (stored,) = service.events().values()
    assert stored["outcome"] == "lost" and stored["reason"].startswith("Chose a rival; ask [email]")
    assert len(stored["reason"]) == 500


@pytest.mark.parametrize(
    ("amount", "says"),
    [
        ("-5", "amount: Input should be greater than or equal to 0"),
        ("NaN", "amount: Input should be greater than or equal to 0"),
        ("inf", "amount: Input should be less than 1000000000000"),
        ("1e12", "amount: Input should be less than 1000000000000"),
        ("twelve", "amount: Input should be a valid number"),
    ],
)
def test_a_bad_amount_is_left_out_named_and_the_outcome_kept(
    service: Service, amount: str, says: str
) -> None:
    """HubSpot is answered 2xx and never sends the deal again: the outcome must not be lost
    for a value it can do without."""
    bad = deal()
    bad["properties"]["amount"]["value"] = amount
    answer = service.hubspot(bad).json()
    assert (answer["accepted"], answer["skipped"]) == (1, []), answer
    (dropped,) = answer["dropped"]
    assert dropped["record"] == "deal 18339274923" and dropped["event_id"] in service.events()
    assert dropped["reason"].startswith(says) and dropped["reason"].endswith("stored without it")
    (stored,) = service.events().values()
    assert (stored["outcome"], stored["amount"]) == ("won", None)


def test_a_reason_with_control_characters_is_left_out_and_the_outcome_kept(
    service: Service,
) -> None:
    lost = deal(stage="closedlost")
    lost["properties"]["closed_lost_reason"] = {"value": "budget\x00cut", "timestamp": 1}
    answer = service.hubspot(lost).json()
    assert answer["accepted"] == 1 and answer["skipped"] == []
    assert answer["dropped"][0]["reason"].startswith("reason: Value error, must not contain")
    (stored,) = service.events().values()
    assert (stored["outcome"], stored["reason"], stored["amount"]) == ("lost", None, 12000.0)


def test_a_bad_lead_id_still_skips_the_event_naming_every_field(service: Service) -> None:
    bad = deal(lead_id="x" * 201)
    bad["properties"]["amount"]["value"] = "-5"
    answer = service.hubspot(bad).json()
    assert (answer["accepted"], answer["dropped"]) == (0, [])
    (skipped,) = answer["skipped"]
    assert "lead_id: String should have at most 200 characters" in skipped["reason"]
    assert "amount: Input should be greater than or equal to 0" in skipped["reason"]
    assert service.events() == {}


def test_an_event_sent_again_with_other_values_keeps_what_was_stored(service: Service) -> None:
    """Nothing stored is ever changed: the redelivery is named, the stored event stays."""
    first = service.hubspot(deal())
    assert first.json()["accepted"] == 1
    changed = deal()
    changed["properties"]["amount"]["value"] = "99999"
    answer = service.hubspot(changed).json()
    assert answer["accepted"] == 0
    assert (
        "was stored before with other values (won at 2026-11-20 16:00)"
        in answer["skipped"][0]["reason"]
    )
    assert [event["amount"] for event in service.events().values()] == [12000.0]


def test_salesforce_stores_the_rest_and_logs_what_it_skips(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leadloop.crm")
    base = {"Id": "0065g00000Q8mX1AAJ", "StageName": "Closed Won", "Amount": "10.0"}
    message = outbound_message(
        (
            "04l5g00000AAA01AAF",
            base | {"Leadloop_Lead_Id__c": "crm-10003", "LastModifiedDate": "2026-11-20T10:00:00Z"},
        ),
        (
            "04l5g00000AAA02AAF",
            base | {"Leadloop_Lead_Id__c": "nobody", "LastModifiedDate": "2026-11-20T10:00:00Z"},
        ),
        (
            "04l5g00000AAA03AAF",
            base | {"Leadloop_Lead_Id__c": "crm-10004", "LastModifiedDate": "2026-01-20T10:00:00Z"},
        ),
        (
            "04l5g00000AAA04AAF",
            base | {"Leadloop_Lead_Id__c": "crm-10005", "LastModifiedDate": "not a time"},
        ),
        ("04l5g00000AAA05AAF", {"Id": "0065g00000Q8mX5AAJ", "StageName": "Closed Won"}),
    )
    assert acknowledged(service.salesforce(message))
    assert list(service.events()) == ["salesforce:04l5g00000AAA01AAF"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "leadloop.crm")
    for says in (
        "notification 04l5g00000AAA02AAF): unknown lead 'nobody'",
        "notification 04l5g00000AAA03AAF): occurred_at is before the lead was created",
        "notification 04l5g00000AAA04AAF): LastModifiedDate is not a time",
        "notification 04l5g00000AAA05AAF): the outbound message does not carry "
        "Leadloop_Lead_Id__c and LastModifiedDate",
    ):
        assert says in logged


def test_salesforce_stores_an_outcome_without_an_amount_it_cannot_take(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="leadloop.crm")
    item = (
        "04l5g00000AAA06AAF",
        {
            "Id": "0065g00000Q8mX6AAJ",
            "StageName": "Closed Lost",
            "Amount": "-250.0",
            "Leadloop_Lead_Id__c": "crm-10003",
            "LastModifiedDate": "2026-11-20T10:00:00Z",
        },
    )
    assert acknowledged(service.salesforce(outbound_message(item)))
    assert service.events()["salesforce:04l5g00000AAA06AAF"]["amount"] is None
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "leadloop.crm")
    assert (
        "notification 04l5g00000AAA06AAF): amount: Input should be greater than or equal to 0: "
        "stored without it" in logged
    )


# --- HubSpot's signature --------------------------------------------------------------------


def hubspot_signature(secret: str, url: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature, as its documentation gives it."""
    source = b"POST" + url.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def signed(
    url: str, body: bytes, secret: str = SECRET, age: timedelta = timedelta(0)
) -> dict[str, str]:
    timestamp = str(millis(datetime.now(UTC) - age))
    return {
        "X-HubSpot-Signature-v3": hubspot_signature(secret, url, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
    }


@pytest.fixture
def signing_service(tmp_path: Path) -> Iterator[Service]:
    with started(tmp_path, hubspot_client_secret=SecretStr(SECRET)) as running:
        yield running


def test_a_valid_hubspot_signature_is_accepted(signing_service: Service) -> None:
    body = DEAL.read_bytes()
    plain = signing_service.hubspot(body, **signed("http://testserver/v1/crm/hubspot", body))
    assert plain.status_code == 200, plain.text
    # Behind a proxy that ends TLS, HubSpot signed the https:// address it posts to; with the
    # key in the query and an escape HubSpot decodes before signing.
    key = signing_service.key
    url = f"/v1/crm/hubspot?key={key}&ref=a%3Ab"
    headers = signed(f"https://testserver/v1/crm/hubspot?key={key}&ref=a:b", body)
    sent = signing_service.client.post(
        url, content=body, headers=headers | {"content-type": "application/json"}
    )
    assert sent.status_code == 200, sent.text
    assert len(signing_service.events()) == 1


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "no X-HubSpot-Signature-v3"),
        ({"secret": "another-secret"}, "does not match"),
        ({"age": timedelta(minutes=6)}, "more than 5 minutes"),
        ({"tampered": True}, "does not match"),
        ({"timestamp": "\xb2"}, "not a time in milliseconds"),  # "²", a digit to isdigit()
        ({"timestamp": "9" * 15}, "not a time in milliseconds"),  # after the year 9999
        ({"signature": "\xe9t\xe9"}, "does not match"),  # not ASCII
    ],
    ids=["unsigned", "wrong-secret", "stale", "tampered-body", "bad-timestamp", "year", "latin-1"],
)
def test_an_invalid_hubspot_signature_is_401(
    signing_service: Service, headers: dict[str, Any], says: str
) -> None:
    body = DEAL.read_bytes()
    sent: dict[str, Any] = {}
    if headers:
        sent = signed(
            "http://testserver/v1/crm/hubspot",
            body,
            headers.get("secret", SECRET),
            headers.get("age", timedelta(0)),
        )
        for name in ("timestamp", "signature"):  # as HTTP carries them: latin-1
            if name in headers:
                header = {"timestamp": TIMESTAMP_HEADER, "signature": SIGNATURE_HEADER}[name]
                sent[header] = headers[name].encode("latin-1")
    posted = body.replace(b"12000", b"99000") if headers.get("tampered") else body
    answer = signing_service.hubspot(posted, **sent)
    assert answer.status_code == 401, answer.text
    assert says in answer.json()["detail"]
    assert signing_service.events() == {}


def test_without_a_secret_the_signature_is_not_checked(service: Service) -> None:
    bogus = {"X-HubSpot-Signature-v3": "bm90IGEgc2lnbmF0dXJl", "X-HubSpot-Request-Timestamp": "1"}
    assert service.hubspot(DEAL.read_bytes(), **bogus).status_code == 200


# --- bodies that are not the CRM's ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe\x00garbage", "the body is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"objectId": 1}', "neither a HubSpot deal (no dealId) nor a contact (no vid)"),
        (
            b'{"dealId": "x", "portalId": 1, "properties": {}}',
            "dealId: missing, or not a HubSpot id",
        ),
        (
            b'{"dealId": 1, "portalId": 1, "properties": []}',
            "properties: missing, or not an object",
        ),
        (
            b'{"dealId": 1, "portalId": 1, "properties": {"dealstage": "closedwon"}}',
            "properties.dealstage: not a HubSpot property",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not JSON"),
        (
            b'{"vid": 1, "portal-id": 1, "properties": {"lifecyclestage": '
            b'{"value": "customer", "versions": 5}}}',
            "properties.lifecyclestage.versions: not a list",
        ),
        (
            b'{"dealId": 1, "portalId": 1, "properties": {"dealstage": '
            b'{"value": "closedwon", "versions": true}}}',
            "properties.dealstage.versions: not a list",
        ),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "no-kind",
        "bad-id",
        "bad-properties",
        "flat-property",
        "deep",
        "number-versions",
        "boolean-versions",
    ],
)
def test_a_body_that_is_not_hubspot_s_is_400_naming_the_problem(
    service: Service, body: bytes, says: str
) -> None:
    answer = service.hubspot(body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["detail"]


def test_a_message_that_is_not_salesforce_s_is_400_naming_the_problem(service: Service) -> None:
    item = notifications()[0]
    too_many = outbound_message(*[(f"04l5g00000B{n:04d}AAF", item[1]) for n in range(101)])
    cases = {
        b"not xml at all": "not well-formed XML",
        b"<a><b></a>": "not well-formed XML: mismatched tag",
        b"<Envelope/>": "the root is not soapenv:Envelope",
        outbound_message(item).replace(
            OUTBOUND.encode(), b"urn:other"
        ): "no soapenv:Body/notifications",
        outbound_message(): "0 Notification elements",
        too_many: "101 Notification elements",
        outbound_message(("", item[1])): "Notification 1: no Id",
        outbound_message(item).replace(
            b' xsi:type="sf:Opportunity"', b""
        ): "no sObject with an xsi:type",
        outbound_message(item, organization=""): "no OrganizationId",
    }
    for body, says in cases.items():
        answer = service.salesforce(body)
        assert answer.status_code == 400, (says, answer.text)
        code, message = fault(answer)
        assert code == "soapenv:Client" and says in message, (says, message)
    assert service.events() == {}


@pytest.mark.parametrize(
    "encoding", ["foo", "rot13", "hex", "mbcs", "utf-7", "idna", "punycode", "ISO-8859-1"]
)
def test_a_message_declaring_another_encoding_than_utf8_is_400_naming_it(
    service: Service, encoding: str
) -> None:
    """Python's codecs would fail on some ("rot13" is no text encoding, "utf-7" is multi-byte,
    "idna" refuses expat's error handler) with errors of their own: a 500 before."""
    body = MESSAGE.read_bytes().replace(b'encoding="UTF-8"', f"encoding='{encoding}'".encode())
    answer = service.salesforce(body)
    assert answer.status_code == 400, answer.text
    code, message = fault(answer)
    assert code == "soapenv:Client" and f"declares encoding='{encoding}'" in message, message
    assert service.events() == {}


def test_a_message_that_is_not_utf8_is_400_and_a_utf8_one_in_any_spelling_is_taken(
    service: Service,
) -> None:
    latin = MESSAGE.read_bytes().replace(b"Closed Won", "Clos\xe9 Won".encode("latin-1"))
    answer = service.salesforce(latin)
    assert answer.status_code == 400 and "not UTF-8" in fault(answer)[1]
    spelt = MESSAGE.read_bytes().replace(b'encoding="UTF-8"', b"encoding = 'utf8'")
    assert acknowledged(service.salesforce(b"\xef\xbb\xbf" + spelt))  # with a byte-order mark
    assert len(service.events()) == 2


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>&lol9;</OrganizationId>
</notifications></soapenv:Body></soapenv:Envelope>"""


@pytest.mark.parametrize(
    "attack",
    [
        BILLION_LAUGHS,
        # An external entity: the file would come back in the answer's fault, or a log line.
        MESSAGE.read_bytes()
        .replace(
            b"<soapenv:Envelope",
            b'<!DOCTYPE x [<!ENTITY passwd SYSTEM "file:///etc/passwd">]>\n<soapenv:Envelope',
        )
        .replace(b"crm-10003", b"&passwd;"),
        # A DTD fetched from elsewhere.
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
    ],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
def test_xml_attacks_are_refused_unexpanded(service: Service, attack: bytes) -> None:
    began = time.monotonic()
    answer = service.salesforce(attack)
    assert time.monotonic() - began < 2
    assert answer.status_code == 400, answer.text
    code, message = fault(answer)
    assert code == "soapenv:Client" and "declares a DTD" in message
    assert "root:" not in answer.text and "lollol" not in answer.text
    assert service.events() == {}


# --- set-up, keys, organization, a busy store -----------------------------------------------


def test_without_a_mapping_both_routes_answer_404_saying_how_to_set_one_up(tmp_path: Path) -> None:
    with started(tmp_path, crm_mapping=None) as service:
        hubspot = service.hubspot(DEAL.read_bytes())
        assert hubspot.status_code == 404 and "LEADLOOP_CRM_MAPPING" in hubspot.json()["detail"]
        salesforce = service.salesforce(MESSAGE.read_bytes())
        assert salesforce.status_code == 404 and "LEADLOOP_CRM_MAPPING" in fault(salesforce)[1]


def test_a_kind_of_record_the_mapping_lacks_is_404_naming_the_section(tmp_path: Path) -> None:
    only_deals = tmp_path / "deals.yaml"
    only_deals.write_text(
        """
hubspot:
  deal: {lead_id: leadloop_lead_id, stage: dealstage, stages: {closedwon: won}}
salesforce:
  Lead:
    lead_id: Leadloop_Lead_Id__c
    stage: Status
    stages: {Working - Contacted: contacted}
"""
    )
    with started(tmp_path, crm_mapping=only_deals) as service:
        contact = service.hubspot(CONTACT.read_bytes())
        assert contact.status_code == 404
        assert "no hubspot.contact section" in contact.json()["detail"]
        opportunity = service.salesforce(MESSAGE.read_bytes())
        assert opportunity.status_code == 404
        assert "no salesforce.Opportunity section" in fault(opportunity)[1]


def test_the_key_may_come_in_the_query_and_never_reaches_the_logs(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = service.salesforce(MESSAGE.read_bytes(), key="ll_" + "A" * 43)
    assert unknown.status_code == 401 and "?key=<key>" in unknown.json()["detail"]
    reader = api_key(service.settings, "read")
    assert service.salesforce(MESSAGE.read_bytes(), key=reader).status_code == 403
    in_query = service.client.post(
        f"/v1/crm/hubspot?key={service.key}",
        content=DEAL.read_bytes(),
        headers={"content-type": "application/json"},
    )
    assert in_query.status_code == 200, in_query.text
    # uvicorn's access log line, as `leadloop serve` writes it while the service runs.
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    path = f"/v1/crm/salesforce?key={service.key}&x=1"
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1", "POST", path, "1.1", 200
    )
    line = caplog.records[-1].getMessage()
    assert service.key not in line and "/v1/crm/salesforce?key=[redacted]&x=[redacted]" in line


@pytest.mark.parametrize("name", ["ke%79", "%6B%65%79", "k%65y", "key", "api_key", "KEY", ";key"])
def test_a_key_under_an_encoded_name_is_taken_and_never_reaches_the_logs(
    service: Service, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """The API decodes the parameter's name (`?ke%79=` is `?key=`); a key sent under another
    name is refused. Either way no value of the query reaches the log."""
    path = f"/v1/crm/salesforce?monkey=1&{name}={service.key}&x=1"
    headers = {"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    answer = service.client.post(path, content=MESSAGE.read_bytes(), headers=headers)
    taken = unquote(name) == "key"
    assert acknowledged(answer) if taken else answer.status_code == 401
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1", "POST", path, "1.1", 200
    )
    line = caplog.records[-1].getMessage()
    assert service.key not in line
    assert line.count("[redacted]") == 3


def test_a_message_from_another_organization_is_refused(tmp_path: Path) -> None:
    with started(tmp_path, salesforce_organization_id="00D5g000004ZzZz") as service:
        refused = service.salesforce(MESSAGE.read_bytes())
        assert refused.status_code == 403
        assert "another Salesforce organization" in fault(refused)[1]
        assert service.events() == {}
    with started(tmp_path / "same", salesforce_organization_id="00D5g000004SxTb") as service:
        assert acknowledged(service.salesforce(MESSAGE.read_bytes()))  # the 15-character form


def test_a_busy_store_is_a_503_the_crm_retries_and_then_nothing_is_lost(service: Service) -> None:
    """While an import holds SQLite's write lock, nothing can be stored: both routes answer 503
    (HubSpot and Salesforce send again); once it is released, the redelivery is stored once.
    SQLite waits 30 s for a lock (`store.db`): the service is given the same file with a
    0.2 s wait, so that the test does not wait 30 s."""
    url = service.settings.database_url
    state = service.client.app.state.leadloop  # type: ignore[attr-defined]
    state.sessions = session_factory(create_engine(url, connect_args={"timeout": 0.2}))
    blocker = create_engine(url).connect()
    blocker.execute(text("BEGIN IMMEDIATE"))
    try:
        hubspot = service.hubspot(DEAL.read_bytes())
        salesforce = service.salesforce(MESSAGE.read_bytes())
    finally:
        blocker.execute(text("ROLLBACK"))
        blocker.close()
    assert hubspot.status_code == 503 and "cannot take outcomes now" in hubspot.json()["detail"]
    assert salesforce.status_code == 503
    assert fault(salesforce)[0] == "soapenv:Server"
    assert service.events() == {}
    assert service.hubspot(DEAL.read_bytes()).json()["accepted"] == 1
    assert acknowledged(service.salesforce(MESSAGE.read_bytes()))
    assert len(service.events()) == 3
    state.sessions.kw["bind"].dispose()


# --- the mapping file -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "says"),
    [
        (
            "hubspot:\n  deal: {lead_id: x, stage: dealstage, stages: {closedwon: winner}}\n",
            "hubspot.deal.stages.closedwon: Input should be 'won', 'lost', 'disqualified', "
            "'handed_over' or 'contacted'",
        ),
        (
            "hubspot:\n  deal: {lead_id: x, stage_name: dealstage, stages: {closedwon: won}}\n",
            "hubspot.deal.stage: Field required; hubspot.deal.stage_name: Extra inputs",
        ),
        (
            "hubspot:\n  deal: {stage: s, stages: {a: won}}\n",
            "hubspot.deal.lead_id: Field required",
        ),
        ("salesforce:\n  Opportunity: {lead_id: L, stage: S, stages: {yes: won}}\n", "quote it"),
        (
            "hubspot:\n  deal: {lead_id: x, stage: s, stages: {null: won}}\n",
            "hubspot.deal.stages: Value error, a stage read as null",
        ),
        (
            "hubspot:\n  deal: {lead_id: x, stage: s, stages: {~: won, a: lost}}\n",
            "hubspot.deal.stages: Value error, a stage read as null",
        ),
        (
            "hubspot:\n  deal: {lead_id: x, stage: s, stages: {1.50: won}}\n",
            "hubspot.deal.stages: Value error, a stage read as the float 1.5: quote it",
        ),
        (
            "hubspot:\n  deal: {lead_id: x, stage: s, stages: {2026-01-01: won}}\n",
            "hubspot.deal.stages: Value error, a stage read as the date 2026-01-01: quote it",
        ),
        ("hubspot: {}\n", "map deals, contacts or both"),
        ("{}\n", "map hubspot, salesforce or both"),
        ("hubspot: [\n", "not valid YAML"),
    ],
    ids=[
        "outcome",
        "key",
        "lead-id",
        "boolean-stage",
        "null-stage",
        "tilde-stage",
        "float-stage",
        "date-stage",
        "empty-hubspot",
        "empty",
        "yaml",
    ],
)
def test_a_wrong_mapping_is_a_clear_error_naming_the_key(yaml_text: str, says: str) -> None:
    with pytest.raises(CrmMappingError) as caught:
        parse_crm_mapping(yaml_text, "stages.yaml")
    assert str(caught.value).startswith("stages.yaml: ") and says in str(caught.value)


def test_a_stage_id_written_as_a_number_is_its_digits_and_a_quoted_one_as_written() -> None:
    mapping = parse_crm_mapping(
        "hubspot:\n  deal: {lead_id: x, stage: s, stages: {1234567: won, '1.50': lost, "
        "'null': disqualified}}\n"
    )
    assert (
        mapping.hubspot
        and mapping.hubspot.deal
        and mapping.hubspot.deal.stages
        == {"1234567": "won", "1.50": "lost", "null": "disqualified"}
    )


def test_a_wrong_mapping_file_stops_the_service_at_start(tmp_path: Path) -> None:
    wrong = tmp_path / "stages.yaml"
    wrong.write_text("hubspot:\n  deal: {lead_id: x, stage: dealstage, stages: {closedwon: win}}\n")
    with pytest.raises(ValidationError, match=r"hubspot\.deal\.stages\.closedwon"):
        Settings(crm_mapping=wrong)
    result = CliRunner().invoke(
        cli,
        ["keys", "list"],
        env={
            "LEADLOOP_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "LEADLOOP_CRM_MAPPING": str(wrong),
        },
    )
    assert result.exit_code == 2, result.output
    assert (
        "LEADLOOP_CRM_MAPPING" in result.stderr and "hubspot.deal.stages.closedwon" in result.stderr
    )
    missing = CliRunner().invoke(
        cli, ["keys", "list"], env={"LEADLOOP_CRM_MAPPING": str(tmp_path / "no.yaml")}
    )
    assert missing.exit_code == 2 and "cannot read the CRM mapping" in missing.stderr


# --- the service function, on each store ----------------------------------------------------


def outcome(event_id: str, lead_id: str, **changes: Any) -> dict[str, Any]:
    """An outcome event as the CRM routes hand it to the service."""
    base = {
        "event_id": event_id,
        "lead_id": lead_id,
        "outcome": "won",
        "occurred_at": datetime(2026, 11, 20, tzinfo=UTC),
        "amount": None,
        "reason": None,
        "sequence": None,
    }
    return base | changes


def test_storable_outcomes_are_stored_and_the_others_named(sessions: sessionmaker[Session]) -> None:
    """On SQLite and PostgreSQL: stored once, a replay answered alike, nothing stored changed."""
    store_leads(sessions, "a", "b")
    now = datetime(2026, 11, 30, tzinfo=UTC)
    batch = [
        outcome("e1", "a"),
        outcome("e2", "nobody"),
        outcome("e3", "b", occurred_at=CREATED - timedelta(days=3)),
        outcome("e1", "a"),
        outcome("e4", "b", outcome="lost"),
        outcome("e4", "b", outcome="won"),
    ]
    first = record_storable_outcomes(sessions, batch, PII_KEY, now)
    assert first.accepted == 2
    assert sorted(first.skipped) == [1, 2, 5]
    assert "unknown lead 'nobody'" in first.skipped[1]
    assert first.skipped[2].startswith("occurred_at is before the lead was created")
    assert "e4 was stored before with other values (lost at" in first.skipped[5]
    assert record_storable_outcomes(sessions, batch, PII_KEY, now) == first
    with sessions() as session:
        stored = repository.stored_events(session, ["e1", "e4"])
        count = session.scalar(select(func.count()).select_from(OutcomeEvent))
    assert count == 2 and stored["e4"]["outcome"] == "lost"


def test_a_lead_erased_while_the_crm_s_outcomes_are_stored_is_skipped_and_the_rest_kept(
    sessions: sessionmaker[Session],
) -> None:
    """On SQLite and PostgreSQL: the store's own check of the leads finds it gone; a 500
    before, which the CRM would have sent again for days."""
    store_leads(sessions, "a", "b")
    batch = [outcome("e1", "a"), outcome("e2", "b")]
    with erased_midway(sessions, "b"):
        recorded = record_storable_outcomes(sessions, batch, PII_KEY, datetime.now(UTC))
    assert recorded.accepted == 1
    assert recorded.skipped == {1: "the lead was erased on request: nothing of it is stored"}
    with sessions() as session:
        assert list(repository.stored_events(session, ["e1", "e2"])) == ["e1"]


def test_a_reason_of_many_short_addresses_is_masked_then_cut_to_the_column(
    sessions: sessionmaker[Session],
) -> None:
    """On SQLite and PostgreSQL: each `a@b.co` masked is `[email]`, a character longer, so a
    reason of 497 characters would outgrow VARCHAR(500) (PostgreSQL refused it: a 500)."""
    store_leads(sessions, "a")
    reason = "a@b.co " * 71
    recorded = record_storable_outcomes(
        sessions, [outcome("e1", "a", reason=reason)], PII_KEY, datetime.now(UTC)
    )
    assert (recorded.accepted, recorded.skipped) == (1, {})
    with sessions() as session:
        stored = repository.stored_events(session, ["e1"])["e1"]["reason"]
    assert len(stored) == 500 and stored.startswith("[email] [email]") and "@" not in stored


def test_a_hubspot_reason_is_masked_before_it_is_cut(service: Service) -> None:
    """Cut first, an address across the cut would keep its unmasked half; masked, the reason
    of short addresses is longer than the column, and cut to it."""
    lost = deal(stage="closedlost")
    reason = "x" * 490 + " jane.doe@example.com " + "a@b.co " * 10
    lost["properties"]["closed_lost_reason"] = {"value": reason, "timestamp": 1795190400000}
    assert service.hubspot(lost).json()["accepted"] == 1
    (stored,) = service.events().values()
    assert stored["reason"] == "x" * 490 + " [email] ["
    many = deal(stage="closedlost", deal_id=78)
    many["properties"]["closed_lost_reason"] = {"value": "a@b.co " * 71, "timestamp": 1}
    assert service.hubspot(many).json()["accepted"] == 1
    reasons = sorted(len(event["reason"]) for event in service.events().values())
    assert reasons == [500, 500]
