"""Alerts: what the reports found that someone should act on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Alert:
    #: source_stopped_converting | outcome_feed_stalled | feature_drift | calibration_drift |
    #: sla_breaches
    kind: str
    subject: str  # the source, feature or grade it is about
    since: str  # ISO date the problem started, as far as the report can tell
    evidence: str  # the numbers behind it, in one sentence
    report: str  # file name of the report that explains it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
