"""Salesforce outbound messages: the SOAP 1.1 `notifications` call, parsed with defusedxml and
turned into leadloop outcome events, and the answers Salesforce reads.

One message carries 1 to 100 `Notification`s of one sObject type, each with the notification's
own `Id` (the same when Salesforce delivers it again) and the fields chosen for the outbound
message, in the `urn:sobject.enterprise.soap.sforce.com` namespace (see `examples/crm/`).
Salesforce sends it again, for up to 24 hours, until it reads `<Ack>true</Ack>`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from serving.crm import Candidate, MappedRecords, Note, NotMapped, PayloadError, iso_time
from serving.crm.mapping import SALESFORCE_DEFAULT_TIME, ObjectMapping

SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100
#: The encoding an XML declaration names, if it names one.
_DECLARED_ENCODING = re.compile(r"""<\?xml\s[^>]*?\bencoding\s*=\s*["']([^"']*)["']""")
#: The answer that tells Salesforce the message was taken: it stops sending it.
ACKNOWLEDGEMENT = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENVELOPE}">'
    "<soapenv:Body>"
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
).encode()


@dataclass(frozen=True)
class Notification:
    #: The notification's id: the same on every delivery of it.
    id: str
    #: `Opportunity`, `Lead`...: the sObject's `xsi:type` without its prefix.
    sobject_type: str
    #: The fields the outbound message carries; None for a field sent as `xsi:nil`.
    fields: Mapping[str, str | None]


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str | None
    notifications: tuple[Notification, ...]


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """The message in `body`; PayloadError naming what is wrong. A document that declares a
    DTD (entity expansion, external entities) is refused before anything in it is read."""
    try:
        root = fromstring(_utf8_text(body), forbid_dtd=True)
    except DefusedXmlException:
        raise PayloadError(
            "the XML declares a DTD or entities, which an outbound message never does: refused "
            "unread"
        ) from None
    except ParseError as exc:
        raise PayloadError(f"the body is not well-formed XML: {exc}") from None
    if root.tag != f"{{{SOAP_ENVELOPE}}}Envelope":
        raise PayloadError("not a SOAP 1.1 message: the root is not soapenv:Envelope")
    notifications = root.find(f"{{{SOAP_ENVELOPE}}}Body/{{{OUTBOUND}}}notifications")
    if notifications is None:
        raise PayloadError(f"no soapenv:Body/notifications element (namespace {OUTBOUND})")
    organization_id = _text(notifications, "OrganizationId")
    if not organization_id:
        raise PayloadError("notifications: no OrganizationId")
    items = notifications.findall(f"{{{OUTBOUND}}}Notification")
    if not 1 <= len(items) <= MAX_NOTIFICATIONS:
        raise PayloadError(
            f"notifications: {len(items)} Notification elements (Salesforce sends 1 to "
            f"{MAX_NOTIFICATIONS})"
        )
    return OutboundMessage(
        organization_id=organization_id,
        action_id=_text(notifications, "ActionId"),
        notifications=tuple(_notification(n, item) for n, item in enumerate(items)),
    )


def _utf8_text(body: bytes) -> str:
    """`body` as text: Salesforce sends UTF-8, and says so. The parser is given text, so that
    it never looks up a declared encoding in Python's codecs ("rot13", "idna", "utf-7" fail
    there with errors of their own); one other than UTF-8 is refused, named."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the body is not UTF-8 text, as Salesforce sends: {exc}") from None
    declared = _DECLARED_ENCODING.match(text)
    if declared and declared.group(1).strip().casefold() not in {"utf-8", "utf8"}:
        raise PayloadError(
            f"the XML declares encoding={declared.group(1)!r}: an outbound message is UTF-8"
        )
    return text


def _notification(index: int, item: Element) -> Notification:
    where = f"Notification {index + 1}"
    notification_id = _text(item, "Id")
    if not notification_id:
        raise PayloadError(f"{where}: no Id")
    sobject = item.find(f"{{{OUTBOUND}}}sObject")
    xsi_type = (sobject.get(f"{{{XSI}}}type") or "") if sobject is not None else ""
    sobject_type = xsi_type.rpartition(":")[2]  # sf:Opportunity
    if sobject is None or not sobject_type:
        raise PayloadError(f"{where}: no sObject with an xsi:type")
    fields = {
        child.tag.removeprefix(f"{{{SOBJECT}}}"): (
            None if child.get(f"{{{XSI}}}nil") == "true" else (child.text or "").strip()
        )
        for child in sobject
        if child.tag.startswith(f"{{{SOBJECT}}}")
    }
    return Notification(notification_id, sobject_type, fields)


def _text(parent: Element, name: str) -> str | None:
    found = parent.find(f"{{{OUTBOUND}}}{name}")
    return None if found is None or found.text is None else found.text.strip() or None


def outcome_records(
    message: OutboundMessage, mapping: Mapping[str, ObjectMapping]
) -> MappedRecords:
    """An outcome event per notification whose stage is mapped, a note for each other.
    NotMapped if the mapping has no section for the message's sObject type."""
    records = MappedRecords()
    for notification in message.notifications:
        section = mapping.get(notification.sobject_type)
        if section is None:
            raise NotMapped(
                f"the CRM mapping has no salesforce.{notification.sobject_type} section: add "
                f"one to take {notification.sobject_type} outbound messages"
            )
        _add(records, notification, section)
    return records


def _add(records: MappedRecords, notification: Notification, section: ObjectMapping) -> None:
    fields = notification.fields
    record_id = fields.get("Id") or "?"
    record = f"{notification.sobject_type} {record_id} (notification {notification.id})"
    event_id = f"salesforce:{notification.id}"

    def skip(reason: str) -> None:
        records.skipped.append(Note(record, reason, event_id))

    if section.stage not in fields:
        return skip(f"the outbound message does not carry {section.stage}: add it")
    stage = fields[section.stage] or None
    outcome = section.stages.get(stage) if stage is not None else None
    if outcome is None:
        why = f"{section.stage} {stage!r} is not in the mapping" if stage else "no stage value"
        records.ignored.append(Note(record, why, event_id))
        return None
    time_field = section.occurred_at or SALESFORCE_DEFAULT_TIME
    missing = [name for name in (section.lead_id, time_field) if name not in fields]
    if missing:
        return skip(f"the outbound message does not carry {' and '.join(missing)}: add them")
    lead_id = fields[section.lead_id] or None
    if lead_id is None:
        return skip(f"no lead id: {section.lead_id} is empty")
    moment = fields[time_field] or fields.get(SALESFORCE_DEFAULT_TIME)
    if not moment:
        return skip(f"no time: {time_field} is empty")
    occurred = iso_time(moment)  # a dateTime (2026-11-20T16:00:00.000Z), or a date: midnight
    if occurred is None:
        return skip(f"{time_field} is not a time")
    # Checked with the outcome (`serving.crm.checked`): a bad one is left out, not the event.
    event = {
        "event_id": event_id,
        "lead_id": lead_id,
        "outcome": outcome.value,
        "occurred_at": occurred,
        "amount": (fields.get(section.amount) or None) if section.amount else None,
        "reason": (fields.get(section.reason) or None) if section.reason else None,
    }
    records.candidates.append(Candidate(record, event))
    return None


def fault(message: str, sender: bool) -> bytes:
    """A SOAP 1.1 fault: Salesforce shows its faultstring in the outbound message queue.
    `sender`: the message is at fault (soapenv:Client), else the service (soapenv:Server)."""
    code = "soapenv:Client" if sender else "soapenv:Server"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENVELOPE}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    ).encode()
