"""What the marketer reports read: leads, their events and predictions, up to an as-of time.

`read_report_data` is the I/O edge (the store); everything after it is pure. No PII field is
ever read: the store keeps only their keyed hashes, and reports take the model fields alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from models.registry import ChampionLookup, LoadedScorer
from store.outcomes import CLOSING_OUTCOMES, Outcome, latest_closing_outcomes
from store.repository import ReportFrames, report_frames

_TIME = "datetime64[ns, UTC]"
FEED_COLUMNS = ["occurred_at", "source"]


def _first(events: pd.DataFrame, kind: str) -> pd.Series:
    """Each lead's first event of `kind` (an empty, typed series when there is none)."""
    times = events.loc[events["outcome"] == kind, ["lead_id", "occurred_at"]]
    return times.groupby("lead_id")["occurred_at"].min().astype(_TIME)


def _first_contacts(table: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """The first contact at or after the lead's hand-over (or any contact, without one)."""
    contacts = events.loc[events["outcome"] == Outcome.CONTACTED, ["lead_id", "occurred_at"]]
    contacts = contacts.astype({"occurred_at": _TIME})
    start = table[["lead_id", "handed_over"]].astype({"handed_over": _TIME})
    joined = contacts.merge(start, on="lead_id", how="inner")
    after = joined[joined["handed_over"].isna() | (joined["occurred_at"] >= joined["handed_over"])]
    first = after.groupby("lead_id")["occurred_at"].min().astype(_TIME)
    return table["lead_id"].map(first).astype(_TIME)


@dataclass(frozen=True)
class ReportData:
    """Leads with their first lifecycle times, final outcome and the champion's probability."""

    #: One row per lead: lead_id, created_at, source, lead_type, handed_over, contacted (first
    #: contact at or after the hand-over), outcome, closed_at, amount, probability, grade.
    leads: pd.DataFrame
    features: pd.DataFrame  # the model fields of each lead, as last scored or stored
    champion: LoadedScorer | None
    as_of: pd.Timestamp
    #: Each closing outcome known at `as_of`: `occurred_at` and the lead's `source`.
    feed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FEED_COLUMNS))
    #: The latest sign of activity (a lead, a score, or the date asked for): how long the
    #: feed has been silent is measured up to it.
    activity_until: pd.Timestamp | None = None
    #: The date asked for, when it was later than the last outcome (the reports then judge as
    #: of the last outcome: nothing is known of what converted since).
    asked_as_of: pd.Timestamp | None = None
    #: Why the reports judge no model, when they do not.
    no_champion_because: str | None = None


def read_report_data(
    sessions: sessionmaker[Session],
    schema: LeadSchema,
    champion: ChampionLookup,
    as_of: datetime | None,
) -> ReportData:
    """Read the store as it was at `as_of` (default, and at the latest: its last closing
    outcome).

    A champion that learnt from leads after that date is left out: it would judge them in
    hindsight.
    """
    with sessions() as session:
        frames = report_frames(session)
    moment, asked, activity = judged_as_of(as_of, frames, pd.Timestamp.now(tz="UTC"))
    usable, why = champion.champion, None
    if champion.problem is not None:
        why = f"the champion could not be loaded ({champion.problem}): nothing to judge"
    elif usable is None:
        why = "no champion has been trained yet: nothing to judge"
    elif trained_after(usable, moment):
        usable, why = None, "no champion that predates the report's date: nothing to judge"
    data = build_report_data(schema, usable, moment, frames)
    return replace(data, activity_until=activity, asked_as_of=asked, no_champion_because=why)


def trained_after(champion: LoadedScorer, as_of: pd.Timestamp) -> bool:
    """Whether the champion saw (trained or was judged on) leads created after `as_of`."""
    return pd.Timestamp(champion.card.seen_until) > as_of


def judged_as_of(
    as_of: datetime | None, frames: ReportFrames, now: pd.Timestamp
) -> tuple[pd.Timestamp, pd.Timestamp | None, pd.Timestamp]:
    """The date the reports judge as of, the date asked for when it was later than the last
    outcome, and the latest sign of activity (the date asked for, or without one the store's
    latest lead, score or outcome).

    Closing outcomes are what the reports judge, so they are dated by the last one: a lead
    scored after the CRM's last outcome (or a date asked for beyond it) says nothing of what
    converted since, and must not move the judgement to a date when every lead looks
    unconverted. Hand-overs and contacts do not count: they go on when closing outcomes stop.
    """

    def latest(column: pd.Series) -> pd.Timestamp | None:
        times = pd.to_datetime(column, utc=True).dropna()
        return times.max() if len(times) else None

    events = frames.events
    last_outcome = latest(events.loc[events["outcome"].isin(CLOSING_OUTCOMES), "occurred_at"])
    asked = pd.Timestamp(as_of).tz_convert("UTC") if as_of is not None else None
    if asked is None:
        seen = [latest(frames.leads["created_at"]), latest(frames.snapshots["scored_at"])]
        known = [t for t in [*seen, last_outcome] if t is not None]
        until = max(known) if known else now  # an empty store: the reports say so
    else:
        until = asked  # what the store learnt after the date asked for is not known then
    if last_outcome is None:
        return until, None, until
    if asked is None or asked > last_outcome:
        return last_outcome, asked, until
    return asked, None, until


def build_report_data(
    schema: LeadSchema, champion: LoadedScorer | None, as_of: pd.Timestamp, frames: ReportFrames
) -> ReportData:
    """Everything known at `as_of`, one row per lead (pure)."""
    leads, events, snapshots = frames.leads, frames.events, frames.snapshots
    leads = leads.assign(created_at=pd.to_datetime(leads["created_at"], utc=True))
    leads = leads[leads["created_at"] <= as_of].reset_index(drop=True)
    events = events.assign(occurred_at=pd.to_datetime(events["occurred_at"], utc=True))
    events = events[events["occurred_at"] <= as_of]
    snapshots = snapshots.assign(scored_at=pd.to_datetime(snapshots["scored_at"], utc=True))
    snapshots = snapshots[snapshots["scored_at"] <= as_of]

    table = leads[["lead_id", "created_at", "source", "lead_type"]].copy()
    table["handed_over"] = table["lead_id"].map(_first(events, Outcome.HANDED_OVER))
    table["contacted"] = _first_contacts(table, events)
    final = latest_closing_outcomes(events).set_index("lead_id")
    table["outcome"] = table["lead_id"].map(final["outcome"])
    table["closed_at"] = table["lead_id"].map(final["occurred_at"]).astype(_TIME)
    table["amount"] = table["lead_id"].map(final["amount"]).astype(float)

    fields = [f.name for f in schema.model_fields_in_order]
    ordered = snapshots.sort_values("scored_at", kind="stable")
    latest = ordered.drop_duplicates("lead_id", keep="last")
    latest_features = dict(zip(latest["lead_id"], latest["features"], strict=True))
    values = [
        latest_features.get(lead_id) or attributes or {}
        for lead_id, attributes in zip(leads["lead_id"], leads["attributes"], strict=True)
    ]
    features = pd.DataFrame.from_records(values, columns=fields)
    if champion is not None and len(features):
        probability = champion.scorer.predict_proba(features.to_dict(orient="records"))
        table["probability"] = probability
        table["grade"] = champion.scorer.grades.grades(probability)
    else:
        table["probability"], table["grade"] = np.nan, None
    table["source"] = table["source"].fillna("(none)")
    sources = table.set_index("lead_id")["source"]
    closing = events[events["outcome"].isin(CLOSING_OUTCOMES)]
    feed = pd.DataFrame(
        {"occurred_at": closing["occurred_at"], "source": closing["lead_id"].map(sources)}
    ).dropna(subset=["source"])
    return ReportData(leads=table, features=features, champion=champion, as_of=as_of, feed=feed)
