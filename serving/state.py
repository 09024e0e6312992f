"""What the running service holds: settings-derived objects, the store and the loaded model."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import LoadedScorer


@dataclass
class AppState:
    schema: LeadSchema
    model_name: str
    pii_key: bytes
    sessions: sessionmaker[Session]
    model: LoadedScorer | None = None
    not_ready_reason: str = "starting"
