"""What the API shows of one lead: its latest score, its history, why its score moved, and
the card a sales rep reads in the CRM. Reads only: each function reads the store in one
session, then (for a change) scores the lead's stored data again with the models involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from features.encoding import EncodingError
from features.phrases import Phrasebook, reason_text
from features.schema import LeadSchema
from features.validation import has_control_characters
from models.registry import LoadedScorer
from models.score_change import ScoreChange, explain_change
from models.scorer import Scorer
from serving.model_versions import ModelVersions, VersionUnavailable
from serving.services import reason_documents
from store import repository
from store.repository import MAX_ID
from store.tables import ScoreSnapshot
from training.fallback import FALLBACK_VERSION

#: How far a probability scored again may differ from the stored one and still be the same
#: model's (floating point on another machine), in probability.
SAME_SCORE = 1e-6


def lead_history(
    sessions: sessionmaker[Session],
    lead_id: str,
    before: tuple[datetime, int | None] | None,
    limit: int,
) -> dict[str, Any] | None:
    """One page of the lead's scores, newest first, and where the next page starts (the last
    score's time and id; None at the first score); None if the store holds no such lead."""
    if has_control_characters(lead_id):  # never stored; PostgreSQL refuses to compare a NUL
        return None
    moment, before_id = before if before is not None else (None, None)
    with sessions() as session:
        if repository.get_lead(session, lead_id) is None:
            return None
        page = repository.snapshots_before(session, lead_id, moment, before_id, limit + 1)
        last = page[limit - 1] if len(page) > limit else None
        return {
            "lead_id": lead_id,
            "scores": page[:limit],
            "next_before": last.scored_at if last else None,
            "next_before_id": last.id if last else None,
        }


def lead_view(sessions: sessionmaker[Session], lead_id: str) -> dict[str, Any] | None:
    """The lead, its latest score with reasons and its latest outcome; None if unknown.

    The snapshot and outcome are returned as loaded rows: the response model reads their
    attributes, so the API shows exactly what the store holds.
    """
    if has_control_characters(lead_id):  # never stored; PostgreSQL refuses to compare a NUL
        return None
    with sessions() as session:
        lead = repository.get_lead(session, lead_id)
        if lead is None:
            return None
        return {
            "lead_id": lead.lead_id,
            "created_at": lead.created_at,
            "source": lead.source,
            "lead_type": lead.lead_type,
            "latest_score": repository.latest_snapshot(session, lead_id),
            "outcome": repository.latest_outcome(session, lead_id),
            **repository.first_lifecycle_times(session, lead_id),
        }


class ScoreNotFoundError(LookupError):
    """No score of the lead answers a `from` or `to` (`parameter` names which)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class LeadChange:
    """Two scores of a lead and why the score moved between them."""

    lead_id: str
    earlier: ScoreSnapshot
    later: ScoreSnapshot
    #: None when the move cannot be split (`unexplained` says why).
    split: ScoreChange | None
    unexplained: str | None = None


def lead_change(
    sessions: sessionmaker[Session],
    lead_id: str,
    earlier_at: datetime | None,
    later_at: datetime | None,
    served: LoadedScorer | None,
    versions: ModelVersions,
) -> LeadChange | None:
    """Why the lead's score moved from its score in effect at `earlier_at` (default: the one
    before the later) to the one in effect at `later_at` (default: its latest); None if the
    store holds no such lead or no score of it. Raises `ScoreNotFoundError` when a time has no
    score."""
    if has_control_characters(lead_id):  # never stored; PostgreSQL refuses to compare a NUL
        return None
    with sessions() as session:
        if repository.get_lead(session, lead_id) is None:
            return None
        page = repository.snapshots_before(session, lead_id, later_at, MAX_ID, 2)
        if not page and later_at is None:
            return None  # never scored: nothing to explain, as for an unknown lead
        if not page:
            when = f"{later_at:%Y-%m-%d %H:%M} UTC"
            raise ScoreNotFoundError("to", f"the lead has no score at or before {when}")
        later = page[0]
        if earlier_at is None:
            if len(page) < 2:
                raise ScoreNotFoundError("from", "the lead has one score: nothing to compare")
            earlier = page[1]
        else:
            found = repository.snapshots_before(session, lead_id, earlier_at, MAX_ID, 1)
            if not found:
                when = f"{earlier_at:%Y-%m-%d %H:%M} UTC"
                raise ScoreNotFoundError("from", f"the lead has no score at or before {when}")
            earlier = found[0]
            if (earlier.scored_at, earlier.id) > (later.scored_at, later.id):
                raise ScoreNotFoundError("from", "is a later score than `to`")
    return explain_scores(lead_id, earlier, later, served, versions)


def explain_scores(
    lead_id: str,
    earlier: ScoreSnapshot,
    later: ScoreSnapshot,
    served: LoadedScorer | None,
    versions: ModelVersions,
) -> LeadChange:
    """Split the move from `earlier` to `later`; unexplained when a model cannot be had, or no
    longer scores its snapshot's data as it did (the parts would not add up to the move)."""
    try:
        old_model = _scorer_of(earlier.model_version, served, versions)
        new_model = _scorer_of(later.model_version, served, versions)
        for model, snapshot in ((old_model, earlier), (new_model, later)):
            again = model.predict_proba([snapshot.features])[0]
            if abs(again - snapshot.probability) > SAME_SCORE:
                return LeadChange(
                    lead_id, earlier, later, None,
                    f"model version {snapshot.model_version} no longer scores the lead's data "
                    f"of {snapshot.scored_at:%Y-%m-%d %H:%M} UTC as it did",
                )  # fmt: skip
        split = explain_change(old_model, new_model, earlier.features, later.features)
    except VersionUnavailable as exc:
        return LeadChange(lead_id, earlier, later, None, str(exc))
    except EncodingError as exc:  # a field's type changed between the versions
        return LeadChange(lead_id, earlier, later, None, f"the models read the lead apart: {exc}")
    return LeadChange(lead_id, earlier, later, split)


def _scorer_of(version: str, served: LoadedScorer | None, versions: ModelVersions) -> Scorer:
    """The scorer of `version`: the served one, or one loaded from the registry."""
    if version == FALLBACK_VERSION:  # fitted again at each start: not the one that scored
        raise VersionUnavailable("the rules score served before the first model is not kept")
    if served is not None and served.version == version:
        return served.scorer
    return versions.get(version).scorer


def has_score(sessions: sessionmaker[Session], lead_id: str) -> bool:
    """Whether the store holds a score of the lead."""
    if has_control_characters(lead_id):  # never stored; PostgreSQL refuses to compare a NUL
        return False
    with sessions() as session:
        return repository.latest_snapshot(session, lead_id) is not None


#: The scores a card's history shows, the latest included.
CARD_HISTORY = 30


@dataclass(frozen=True)
class LeadCard:
    """What a lead's card shows."""

    lead_id: str
    #: Newest first, the latest score included (at most `CARD_HISTORY`).
    history: list[ScoreSnapshot]
    #: The latest score's reasons as the API answers them, each with its words.
    reasons: list[dict[str, Any]]
    #: Why the score last moved; None at the lead's first score.
    change: LeadChange | None

    @property
    def latest(self) -> ScoreSnapshot:
        return self.history[0]


def lead_card(
    sessions: sessionmaker[Session],
    lead_id: str,
    schema: LeadSchema,
    served: LoadedScorer | None,
    versions: ModelVersions,
) -> LeadCard | None:
    """The lead's card; None if the store holds no such lead or no score of it."""
    if has_control_characters(lead_id):  # never stored; PostgreSQL refuses to compare a NUL
        return None
    with sessions() as session:
        history = repository.snapshots_before(session, lead_id, None, None, CARD_HISTORY)
    if not history:
        return None
    latest = history[0]
    change = (
        explain_scores(lead_id, history[1], latest, served, versions) if len(history) > 1 else None
    )
    return LeadCard(lead_id, history, _reasons_of(latest, schema, served, versions), change)


def _reasons_of(
    snapshot: ScoreSnapshot,
    schema: LeadSchema,
    served: LoadedScorer | None,
    versions: ModelVersions,
) -> list[dict[str, Any]]:
    """The snapshot's reasons, each with its words (a score stored before reasons had words
    gets them now, without a standing); for a score asked without reasons, made again by its
    own model from the data it scored (none if that model cannot be had)."""
    if snapshot.reasons is not None:
        return [r if r.get("text") else _with_words(r, schema) for r in snapshot.reasons]
    try:
        scorer = _scorer_of(snapshot.model_version, served, versions)
        (scored,) = scorer.score([snapshot.features], reasons=True)
    except (VersionUnavailable, EncodingError):
        return []
    return reason_documents(scored, Phrasebook.of(schema, scorer.encoder))


def _with_words(reason: dict[str, Any], schema: LeadSchema) -> dict[str, Any]:
    name = reason["field"]
    words = reason_text(schema.by_name.get(name), name, reason["value"], reason["impact"], ())
    return reason | {"text": words}
