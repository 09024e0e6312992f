"""Leads sales disqualified, and the e-mail domains of their companies, to flag when marketing
sends them again.

A lead is flagged when its final closing outcome (by the rule training reads outcomes with) is
a disqualification. An e-mail domain is flagged when a lead of it was disqualified and none of
its leads was won: one poor fit at a company makes its next lead suspect, but a domain that has
also bought is not a poor fit. Domains are known only as keyed hashes (the store keeps no e-mail
address), and domains many people share (free mail) are never flagged: the caller leaves them
out when it looks one up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from features.schema import LeadSchema
from features.validation import LEAD_ID_KEY
from store.outcomes import CLOSING_OUTCOMES, Outcome, latest_closing_outcomes
from store.records import email_domain_of, hash_domain
from store.tables import ErasedLead, Lead, OutcomeEvent


@dataclass(frozen=True)
class Disqualification:
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class PreviousDisqualification(Disqualification):
    #: What matched: the lead itself, or another lead of its e-mail domain.
    matched: Literal["lead", "email_domain"]


#: Closing events read again below the largest id an index has seen: on PostgreSQL an id is
#: handed out before its transaction commits, so an event may appear after a larger one.
REREAD_EVENTS = 1_000


@dataclass(frozen=True)
class StoreMark:
    """How far the store had got when an index was read: its largest outcome event id (a
    primary key: read from the index, whatever the table's size) and its number of erasures."""

    largest_event: int = 0
    erased: int = 0


@dataclass(frozen=True)
class DisqualifiedIndex:
    """Who was disqualified, by lead id and by keyed hash of the e-mail domain, as of `mark`."""

    by_lead: dict[str, Disqualification] = field(default_factory=dict)
    by_domain: dict[str, Disqualification] = field(default_factory=dict)
    mark: StoreMark = StoreMark()

    def lookup(
        self,
        lead: Mapping[str, Any],
        schema: LeadSchema,
        pii_key: bytes,
        shared_domains: frozenset[str],
    ) -> PreviousDisqualification | None:
        """Whether `lead`, or another lead of its e-mail domain, was disqualified; a domain in
        `shared_domains` (free mail) says nothing of a company and is not looked up."""
        found = self.by_lead.get(str(lead.get(LEAD_ID_KEY)))
        if found is not None:
            return PreviousDisqualification(found.at, found.reason, "lead")
        if not self.by_domain:
            return None
        domain = email_domain_of(schema, lead)
        if domain is None or domain in shared_domains:
            return None
        found = self.by_domain.get(hash_domain(domain, pii_key))
        if found is None:
            return None
        return PreviousDisqualification(found.at, found.reason, "email_domain")


def disqualified_index(final: pd.DataFrame, mark: StoreMark = StoreMark()) -> DisqualifiedIndex:
    """The index of leads' final closing outcomes (`lead_id`, `outcome`, `occurred_at`,
    `reason`, `domain_hash`: one row per closed lead)."""
    disqualified = final[final["outcome"] == Outcome.DISQUALIFIED]
    by_lead = {
        lead: Disqualification(at.to_pydatetime(), reason)
        for lead, at, reason in disqualified[["lead_id", "occurred_at", "reason"]].itertuples(
            index=False
        )
    }
    won_domains = set(final.loc[final["outcome"] == Outcome.WON, "domain_hash"].dropna())
    in_domains = disqualified.dropna(subset=["domain_hash"])
    latest = in_domains.sort_values("occurred_at").drop_duplicates("domain_hash", keep="last")
    by_domain = {
        domain: Disqualification(at.to_pydatetime(), reason)
        for domain, at, reason in latest[["domain_hash", "occurred_at", "reason"]].itertuples(
            index=False
        )
        if domain not in won_domains
    }
    return DisqualifiedIndex(by_lead, by_domain, mark)


def store_mark(session: Session) -> StoreMark:
    largest = session.scalar(select(func.max(OutcomeEvent.id)))
    erased = session.scalar(select(func.count()).select_from(ErasedLead))
    return StoreMark(largest or 0, erased or 0)


def load_disqualified_index(session: Session) -> DisqualifiedIndex:
    """The index of everything the store holds now."""
    mark = store_mark(session)
    return disqualified_index(_final_outcomes(session, None), mark)


def refresh_disqualified_index(session: Session, index: DisqualifiedIndex) -> DisqualifiedIndex:
    """`index` brought up to date, reading only what changed: the leads with closing events
    added since (their final outcomes), and every lead of their e-mail domains. Read whole
    again when leads were erased since (their flags must go). `index` itself if nothing moved."""
    mark = store_mark(session)
    if mark == index.mark:
        return index
    if mark.erased != index.mark.erased or not index.mark.largest_event:
        return load_disqualified_index(session)
    since = index.mark.largest_event - REREAD_EVENTS
    touched = (
        select(OutcomeEvent.lead_id)
        .where(OutcomeEvent.id > since, OutcomeEvent.outcome.in_(CLOSING_OUTCOMES))
        .distinct()
    )
    leads = _final_outcomes(session, OutcomeEvent.lead_id.in_(touched))
    domains = sorted(set(leads["domain_hash"].dropna()))
    by_lead = {k: v for k, v in index.by_lead.items() if k not in set(leads["lead_id"])}
    by_lead |= disqualified_index(leads).by_lead
    by_domain = {k: v for k, v in index.by_domain.items() if k not in set(domains)}
    if domains:
        by_domain |= disqualified_index(
            _final_outcomes(session, Lead.email_domain_hash.in_(domains))
        ).by_domain
    return DisqualifiedIndex(by_lead, by_domain, mark)


def _final_outcomes(session: Session, which: ColumnElement[bool] | None) -> pd.DataFrame:
    """Each closed lead's final closing outcome, with its domain hash (of the leads `which`
    selects; all without)."""
    query = (
        select(
            OutcomeEvent.lead_id,
            OutcomeEvent.event_id,
            OutcomeEvent.outcome,
            OutcomeEvent.occurred_at,
            OutcomeEvent.crm_sequence,
            OutcomeEvent.reason,
            Lead.email_domain_hash.label("domain_hash"),
        )
        .join(Lead, Lead.lead_id == OutcomeEvent.lead_id)
        .where(OutcomeEvent.outcome.in_(CLOSING_OUTCOMES))
    )
    if which is not None:
        query = query.where(which)
    columns = ["lead_id", "event_id", "outcome", "occurred_at", "crm_sequence", "reason"]
    events = pd.DataFrame(session.execute(query).all(), columns=[*columns, "domain_hash"])
    if events.empty:
        return events
    events["reason"] = events["reason"].astype(object).where(events["reason"].notna(), None)
    return latest_closing_outcomes(events)
