"""Erasure on request: a lead's rows removed everywhere, and the lead kept out from then on.

The store keeps only a keyed hash of an erased lead's id (HMAC with the PII key, as for every
personal value): enough to recognise the lead when the CRM sends it again, in a scoring
request, an outcome or an import, and not enough to say who it was. Models trained before the
erasure are not retrained by it; the next training run no longer sees the lead.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from store.tables import ErasedLead, Lead, OutcomeEvent, ScoreSnapshot, WebhookDelivery

_IN_CHUNK = 500


@dataclass(frozen=True)
class ErasedRows:
    """What an erasure removed."""

    snapshots: int
    outcomes: int


def erase_lead(session: Session, lead_id: str, key: bytes, now: datetime) -> ErasedRows | None:
    """Remove the lead, its score snapshots, its outcome events and the webhooks it fired (sent
    or not), and remember the erasure; None (and nothing remembered) if the store holds no such
    lead."""
    if session.get(Lead, lead_id) is None:
        return None
    removed = ErasedRows(
        snapshots=_count(session, ScoreSnapshot, lead_id),
        outcomes=_count(session, OutcomeEvent, lead_id),
    )
    # Explicit: no reliance on cascades (SQLite runs them only with PRAGMA foreign_keys on).
    for table in (ScoreSnapshot, OutcomeEvent, WebhookDelivery, Lead):
        session.execute(delete(table).where(table.lead_id == lead_id))
    lead_hash = lead_id_hash(lead_id, key)
    if session.get(ErasedLead, lead_hash) is None:
        session.add(ErasedLead(lead_hash=lead_hash, erased_at=now))
    return removed


def erased_ids(session: Session, lead_ids: Iterable[str], key: bytes) -> set[str]:
    """Those of `lead_ids` that were erased."""
    by_hash = {lead_id_hash(lead_id, key): lead_id for lead_id in set(lead_ids)}
    hashes = sorted(by_hash)
    found: set[str] = set()
    for start in range(0, len(hashes), _IN_CHUNK):
        chunk = hashes[start : start + _IN_CHUNK]
        query = select(ErasedLead.lead_hash).where(ErasedLead.lead_hash.in_(chunk))
        found.update(by_hash[h] for h in session.scalars(query))
    return found


def lead_id_hash(lead_id: str, key: bytes) -> str:
    """HMAC-SHA256 of the id exactly as given (ids are case-sensitive, unlike e-mails), kept
    apart from the PII hashes by its own prefix."""
    return hmac.new(key, b"erased-lead:" + lead_id.encode("utf-8"), hashlib.sha256).hexdigest()


def _count(session: Session, table: type[ScoreSnapshot] | type[OutcomeEvent], lead_id: str) -> int:
    query = select(func.count()).select_from(table).where(table.lead_id == lead_id)
    return session.scalar(query) or 0
