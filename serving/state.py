"""What the running service holds: settings-derived objects, the store and the loaded model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import LoadedScorer


@dataclass
class AppState:
    schema: LeadSchema
    model_name: str
    pii_key: bytes
    sessions: sessionmaker[Session]
    reports_dir: Path
    model: LoadedScorer | None = None
    not_ready_reason: str = "starting"
