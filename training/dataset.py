"""Assemble the training set from closed leads, point in time.

Each closed lead contributes the feature values it had *before* its outcome: its latest score
snapshot taken no later than the outcome, or, when it was never scored in time, its stored row.
Only fields known at scoring time are taken, so a sales-filled field cannot leak in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.schema import LeadSchema, SchemaError
from store.outcomes import latest_closing_outcomes, won_label
from store.repository import TrainingFrames

# Bookkeeping columns of the training set, apart from the schema's field names.
LABEL = "_label"
WEIGHT = "_weight"
CREATED_AT = "_created_at"
AS_OF = "_as_of"
OCCURRED_AT = "_occurred_at"
OUTCOME = "_outcome"
ORIGIN = "_origin"
BOOKKEEPING = (LABEL, WEIGHT, CREATED_AT, AS_OF, OCCURRED_AT, OUTCOME, ORIGIN, "lead_id")


def build_training_set(frames: TrainingFrames, schema: LeadSchema) -> pd.DataFrame:
    """One row per closed lead: the bookkeeping columns, then the schema's model fields."""
    fields = [f.name for f in schema.model_fields_in_order]
    clash = sorted(set(fields) & set(BOOKKEEPING))
    if clash:
        raise SchemaError(f"field names reserved by leadloop's training set: {clash}")
    outcomes = latest_closing_outcomes(frames.outcomes).sort_values("occurred_at", kind="stable")
    snapshots = frames.snapshots.astype({"scored_at": "datetime64[ns, UTC]"})
    joined = pd.merge_asof(
        outcomes.astype({"occurred_at": "datetime64[ns, UTC]"}),
        snapshots.sort_values("scored_at", kind="stable"),
        left_on="occurred_at",
        right_on="scored_at",
        by="lead_id",
        direction="backward",
    )
    leads = frames.leads.set_index("lead_id")
    created_at = pd.to_datetime(leads["created_at"].reindex(joined["lead_id"]), utc=True)
    attributes = leads["attributes"].reindex(joined["lead_id"])
    scored = joined["scored_at"].notna()
    values = [
        snapshot if has_snapshot else (stored or {})
        for snapshot, stored, has_snapshot in zip(
            joined["features"], attributes, scored, strict=True
        )
    ]
    rows = pd.DataFrame(
        {
            "lead_id": joined["lead_id"],
            CREATED_AT: created_at.reset_index(drop=True),
            AS_OF: joined["scored_at"].where(scored, created_at.reset_index(drop=True)),
            OCCURRED_AT: joined["occurred_at"],
            OUTCOME: joined["outcome"],
            LABEL: won_label(joined["outcome"]).astype(int),
            ORIGIN: scored.map({True: "snapshot", False: "lead"}),
        }
    )
    features = pd.DataFrame.from_records(values, columns=fields)
    rows = pd.concat([rows, features], axis=1)
    # A stored row created after its own outcome cannot be what the lead looked like before it.
    return rows[rows[AS_OF] <= rows[OCCURRED_AT]].reset_index(drop=True)


def open_lead_rows(frames: TrainingFrames, schema: LeadSchema) -> pd.DataFrame:
    """The model fields of leads still open, as last stored."""
    fields = [f.name for f in schema.model_fields_in_order]
    attributes = [a or {} for a in frames.open_leads["attributes"]]
    return pd.DataFrame.from_records(attributes, columns=fields)


#: A recent lead's weight is at most this: a win seen one day after scoring is rare evidence,
#: not a reason to count it a hundred times.
MAX_CENSORING_WEIGHT = 10.0
_MIN_CLASS_ROWS = 30


def censoring_weights(rows: pd.DataFrame, max_weight: float = MAX_CENSORING_WEIGHT) -> np.ndarray:
    """Inverse-probability-of-censoring weights for closed leads (1.0 for old ones).

    Recent leads are closed only if they closed fast, and disqualifications close faster than
    wins: counted plainly, the newest leads look worse than they are and every model trained or
    judged on them is biased low. Each closed lead is weighted by 1 / P(a lead with its outcome
    closes within the time this one has had since it was created), the probability estimated
    from the leads created in the older half of the time span (old enough for slow outcomes to
    have arrived). Without enough such leads of every outcome, no lead is reweighted: weighting
    some outcomes and not others would bias the mix.
    """
    weights = np.ones(len(rows))
    if rows.empty:
        return weights
    created = rows[CREATED_AT]
    evidence_end = rows[OCCURRED_AT].max()
    delay = (rows[OCCURRED_AT] - created).dt.total_seconds().to_numpy()
    age = (evidence_end - created).dt.total_seconds().to_numpy()
    old = (created <= created.min() + (evidence_end - created.min()) / 2).to_numpy()
    outcomes = rows[OUTCOME].to_numpy()
    classes = np.unique(outcomes)
    if any((old & (outcomes == kind)).sum() < _MIN_CLASS_ROWS for kind in classes):
        return weights
    for kind in classes:
        of_class = outcomes == kind
        reference = np.sort(delay[of_class & old])
        closed_within = np.searchsorted(reference, age[of_class], side="right") / len(reference)
        weights[of_class] = 1.0 / np.maximum(closed_within, 1.0 / max_weight)
    return weights


#: Outcomes of leads that have had this quantile of the time to close are nearly all in.
SETTLED_QUANTILE = 0.9


def days_to_close(rows: pd.DataFrame) -> pd.Series:
    """Each closed lead's days from creation to its outcome."""
    return (rows[OCCURRED_AT] - rows[CREATED_AT]).dt.total_seconds() / 86_400


def settled(rows: pd.DataFrame) -> pd.Series:
    """Which closed leads are old enough for nine in ten outcomes of leads like them to have
    arrived: created at least the 90th percentile of the days to close before the newest
    outcome. Among them the fast closers are not over-represented, so their win rate needs no
    censoring weights to be believed. Leads whose outcomes arrive when they are created (an
    export without dates) are all settled."""
    if rows.empty:
        return pd.Series(False, index=rows.index)
    horizon = pd.Timedelta(days=float(days_to_close(rows).quantile(SETTLED_QUANTILE)))
    return rows[CREATED_AT] <= rows[OCCURRED_AT].max() - horizon


def shuffle_outcomes_before(
    frames: TrainingFrames, before: pd.Timestamp, seed: int = 0
) -> TrainingFrames:
    """The same leads with outcomes shuffled among those created before `before`.

    A deliberately worse challenger for checking the promotion gate: it learns from noise and
    is judged on the true outcomes of the leads from `before` on.
    """
    created = frames.leads.set_index("lead_id")["created_at"]
    older = pd.to_datetime(created.reindex(frames.outcomes["lead_id"]), utc=True) < before
    outcomes = frames.outcomes.copy()
    shuffled = np.random.default_rng(seed).permutation(outcomes.loc[older.to_numpy(), "outcome"])
    outcomes.loc[older.to_numpy(), "outcome"] = shuffled
    return TrainingFrames(frames.leads, frames.snapshots, outcomes, frames.open_leads)
