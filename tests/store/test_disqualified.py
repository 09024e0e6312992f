"""Disqualified leads and e-mail domains: read from the final closing outcomes, on SQLite and
PostgreSQL; free mail never stands for a company."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from features.pii import SHARED_EMAIL_DOMAINS, email_domain
from features.schema import LeadSchema
from store.disqualified import (
    Disqualification,
    DisqualifiedIndex,
    disqualified_index,
    load_disqualified_index,
    refresh_disqualified_index,
)
from store.erasure import erase_lead
from store.records import domain_hash, lead_row
from store.repository import add_outcomes, upsert_leads

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KEY = b"test-pii-key"
SHARED = frozenset(SHARED_EMAIL_DOMAINS)
KINDS = ("won", "lost", "disqualified", "disqualified", "contacted")


def final(*rows: tuple[str, str, int, str | None]) -> pd.DataFrame:
    """Final closing outcomes: (lead, outcome, day, domain hash)."""
    return pd.DataFrame(
        [
            {
                "lead_id": lead,
                "outcome": outcome,
                "occurred_at": T0 + timedelta(days=day),
                "reason": f"{outcome} reason of {lead}",
                "domain_hash": domain,
            }
            for lead, outcome, day, domain in rows
        ]
    )


def same(a: DisqualifiedIndex, b: DisqualifiedIndex) -> bool:
    return (a.by_lead, a.by_domain, a.mark) == (b.by_lead, b.by_domain, b.mark)


def test_a_disqualified_lead_and_its_domain_are_flagged_unless_the_domain_bought() -> None:
    index = disqualified_index(
        final(
            ("a1", "disqualified", 1, "acme"),
            ("a2", "disqualified", 5, "acme"),
            ("a3", "lost", 9, "acme"),
            ("b1", "disqualified", 2, "bigco"),
            ("b2", "won", 3, "bigco"),
            ("c1", "disqualified", 4, None),
            ("d1", "lost", 4, "dealer"),
        )
    )
    assert set(index.by_lead) == {"a1", "a2", "b1", "c1"}
    assert index.by_lead["a1"] == Disqualification(
        T0 + timedelta(days=1), "disqualified reason of a1"
    )
    # The domain's latest disqualification; a domain that also bought, or never disqualified,
    # is not a poor fit.
    assert index.by_domain == {
        "acme": Disqualification(T0 + timedelta(days=5), "disqualified reason of a2")
    }


def test_email_domains_are_read_from_values_not_field_names(demo_schema: LeadSchema) -> None:
    assert email_domain(" Jane.Doe@ACME.com ") == "acme.com"
    assert [email_domain(v) for v in ("jane", "a@b", "x y@acme.com", 7, None)] == [None] * 5
    with_mail = {"lead_id": "l1", "email": "jane@acme.com", "full_name": "Jane"}
    hashed = domain_hash(demo_schema, with_mail, KEY)
    assert hashed is not None and hashed == domain_hash(demo_schema, {"email": "BOB@Acme.COM"}, KEY)
    assert hashed != domain_hash(demo_schema, {"email": "jane@acme.co"}, KEY)
    assert domain_hash(demo_schema, {"email": "not an address"}, KEY) is None
    assert hashed not in lead_row(demo_schema, with_mail, KEY, T0)["pii_hashes"].values()


def _store(
    sessions: sessionmaker[Session], schema: LeadSchema, leads: dict[str, str | None]
) -> None:
    with sessions.begin() as session:
        rows = [
            lead_row(schema, {"lead_id": lead, "email": mail, "created_at": T0}, KEY, T0)
            for lead, mail in leads.items()
        ]
        upsert_leads(session, rows)


def _events(sessions: sessionmaker[Session], *events: tuple[str, str, str, int]) -> None:
    rows: list[dict[str, Any]] = [
        {
            "event_id": event_id,
            "lead_id": lead,
            "outcome": outcome,
            "occurred_at": T0 + timedelta(days=day),
            "amount": None,
            "reason": "too small" if outcome == "disqualified" else None,
            "received_at": T0 + timedelta(days=day),
            "crm_sequence": None,
        }
        for event_id, lead, outcome, day in events
    ]
    with sessions.begin() as session:
        add_outcomes(session, rows)


def test_the_index_follows_the_store(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    _store(
        sessions,
        demo_schema,
        {"acme-1": "ann@acme.com", "acme-2": "bo@acme.com", "mail-1": "x@gmail.com", "none": None},
    )
    with sessions() as session:
        before = load_disqualified_index(session)
        assert before.by_lead == {} and refresh_disqualified_index(session, before) is before
    _events(
        sessions,
        ("e1", "acme-1", "disqualified", 1),
        ("e2", "mail-1", "disqualified", 2),
        ("e3", "none", "lost", 1),
        ("e4", "none", "disqualified", 3),
        ("e5", "acme-2", "contacted", 3),
    )
    with sessions() as session:
        index = load_disqualified_index(session)
        assert same(refresh_disqualified_index(session, before), index)
    assert set(index.by_lead) == {"acme-1", "mail-1", "none"}
    assert index.by_lead["none"].at == T0 + timedelta(days=3)  # the final outcome
    assert index.by_lead["acme-1"].reason == "too small"

    # Another lead of acme is flagged by its domain; free mail never is; a new lead without an
    # address is flagged only by its own id.
    def flag(lead: dict[str, Any]) -> tuple[str, datetime] | None:
        found = index.lookup(lead, demo_schema, KEY, SHARED)
        assert found is None or type(found.at) is datetime  # not pandas' Timestamp
        return None if found is None else (found.matched, found.at)

    assert flag({"lead_id": "acme-1"}) == ("lead", T0 + timedelta(days=1))
    assert flag({"lead_id": "acme-9", "email": "new@ACME.com"}) == (
        "email_domain",
        T0 + timedelta(days=1),
    )
    assert flag({"lead_id": "mail-9", "email": "y@gmail.com"}) is None
    assert flag({"lead_id": "other", "email": "z@other.com"}) is None

    # A won lead at acme clears the domain, not the lead; a won after the disqualification
    # clears the lead too (its final outcome counts).
    _events(sessions, ("e6", "acme-2", "won", 4), ("e7", "none", "won", 5))
    with sessions() as session:
        refreshed = refresh_disqualified_index(session, index)
        index = load_disqualified_index(session)
        assert same(refreshed, index)
    assert set(index.by_lead) == {"acme-1", "mail-1"}
    assert flag({"lead_id": "acme-9", "email": "new@acme.com"}) is None


def test_an_erased_lead_is_flagged_no_more(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    _store(sessions, demo_schema, {"gone": "g@gone.example"})
    _events(sessions, ("g1", "gone", "disqualified", 1))
    with sessions() as session:
        before = load_disqualified_index(session)
        assert "gone" in before.by_lead
    with sessions.begin() as session:
        erase_lead(session, "gone", KEY, T0 + timedelta(days=2))
    with sessions() as session:
        index = refresh_disqualified_index(session, before)
    assert index.by_lead == {} and index.by_domain == {}


def test_a_lead_sent_again_without_its_address_keeps_its_domain(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    _store(sessions, demo_schema, {"kept": "k@kept.example"})
    _store(sessions, demo_schema, {"kept": None})
    _events(sessions, ("k1", "kept", "disqualified", 1))
    with sessions() as session:
        index = load_disqualified_index(session)
    assert index.lookup({"lead_id": "x", "email": "a@kept.example"}, demo_schema, KEY, SHARED)


def test_reading_only_what_changed_ends_where_reading_everything_does(
    sessions: sessionmaker[Session], demo_schema: LeadSchema
) -> None:
    """Random rounds of outcomes on leads sharing a few domains: after each, the index brought
    up to date from the last one equals the index read whole."""
    rng = random.Random(7)
    leads = {f"r{i}": f"p{i}@d{i % 4}.example" for i in range(24)}
    _store(sessions, demo_schema, leads)
    with sessions() as session:
        index = load_disqualified_index(session)
    domains_flagged = 0
    for round_ in range(25):
        events = [
            (f"r-{round_}-{k}", rng.choice(list(leads)), rng.choice(KINDS), rng.randint(0, 40))
            for k in range(rng.randint(1, 6))
        ]
        _events(sessions, *events)
        with sessions() as session:
            index = refresh_disqualified_index(session, index)
            assert same(index, load_disqualified_index(session)), round_
        domains_flagged += len(index.by_domain)
    assert index.by_lead and domains_flagged  # the rounds did flag leads and domains
