"""What the running service holds: settings-derived objects, the store and the loaded model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import LoadedScorer
from serving.champion_watch import RegistryView
from serving.key_cache import KeyCache
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
    #: Replaced whole when the champion moves: a request reads it once.
    model: LoadedScorer | None = None
    not_ready_reason: str = "starting"
    registry: RegistryView = field(default_factory=RegistryView)
    keys: KeyCache = field(default_factory=lambda: KeyCache(0))

    @property
    def stale(self) -> bool:
        """Whether the registry names a champion other than the model served."""
        named = self.registry.champion
        return named is not None and (self.model is None or self.model.version != named)
