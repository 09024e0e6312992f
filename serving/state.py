"""What the running service holds: settings-derived objects, the store and the loaded model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import LoadedScorer
from serving.card_links import CardLinks
from serving.champion_watch import RegistryView
from serving.crm import CrmSetup
from serving.key_cache import KeyCache
from serving.model_versions import ModelVersions
from store.disqualified import DisqualifiedIndex, PreviousDisqualification
from store.snapshot_writer import SnapshotWriter


@dataclass
class AppState:
    schema: LeadSchema
    model_name: str
    pii_key: bytes
    sessions: sessionmaker[Session]
    #: Where scores go to be stored (see `SnapshotWriter` for what a crash can lose).
    writer: SnapshotWriter
    reports_dir: Path
    #: Model versions besides the served one, for a score's "why it changed".
    versions: ModelVersions
    #: Signs and checks the links that open a lead's card without an API key.
    card_links: CardLinks
    #: The card's Content-Security-Policy (only the configured CRM origins may frame it).
    card_policy: str
    #: The address card links start with (None: the address a request came to).
    public_url: str | None
    #: Replaced whole when the champion moves: a request reads it once.
    model: LoadedScorer | None = None
    not_ready_reason: str = "starting"
    registry: RegistryView = field(default_factory=RegistryView)
    keys: KeyCache = field(default_factory=lambda: KeyCache(0))
    #: Leads and e-mail domains sales disqualified, reloaded when closing outcomes change.
    disqualified: DisqualifiedIndex = field(default_factory=DisqualifiedIndex)
    #: Free-mail domains, never flagged as a disqualified company.
    shared_email_domains: frozenset[str] = frozenset()
    #: The CRM mapping and secrets of `POST /v1/crm/...` (unset: those routes answer 404).
    crm: CrmSetup = field(default_factory=CrmSetup)

    def previously_disqualified(self, lead: Mapping[str, Any]) -> PreviousDisqualification | None:
        """Whether sales disqualified `lead`, or its company, before (as the index last read)."""
        return self.disqualified.lookup(lead, self.schema, self.pii_key, self.shared_email_domains)

    @property
    def stale(self) -> bool:
        """Whether the registry names a champion other than the model served."""
        named = self.registry.champion
        return named is not None and (self.model is None or self.model.version != named)
