"""The rules score a service falls back to while there is no champion model.

Until `leadloop train` has enough outcomes (or before it has run), the service still scores
leads: with the points score fitted on whatever closed leads exist, behind the same leakage
guard, and marked `rules-fallback` in every response.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from features.encoding import fit_encoder
from features.schema import LeadSchema
from models.calibration import PlattCalibration
from models.card import ModelCard, Window
from models.grades import derive_cutoffs
from models.scorer import Scorer
from store.repository import TrainingFrames
from training.candidates import encode, fit_rules, records
from training.dataset import AS_OF, LABEL, WEIGHT, build_training_set, open_lead_rows
from training.leakage import find_leaks
from training.pipeline import leads_per_month

FALLBACK_VERSION = "rules-fallback"


def fallback_scorer(frames: TrainingFrames, schema: LeadSchema, now: datetime) -> Scorer | None:
    """Points per source, lead type and engagement from all closed leads; None without both
    a won and a lost lead."""
    rows = build_training_set(frames, schema)
    if rows[LABEL].nunique() < 2:
        return None
    rows[WEIGHT] = 1.0
    leaks = find_leaks(schema, rows, open_lead_rows(frames, schema))
    excluded = frozenset(leak.field for leak in leaks if leak.excluded)
    fields = [f.name for f in schema.model_fields_in_order if f.name not in excluded]
    encoder = fit_encoder(schema, records(rows, fields), exclude=excluded)
    encoded = encode(encoder, rows)
    rules = fit_rules(schema, encoder, encoded)
    # The points are log-odds around the base rate already: no holdout to calibrate on.
    identity = PlattCalibration(1.0, 0.0)
    probability = identity.probability(rules.margin(encoded.x))
    base_rate = float(np.mean(encoded.y))
    card = ModelCard(
        trained_at=now,
        model_kind="rules",
        fallback=True,
        training_window=Window(start=rows[AS_OF].min(), end=rows[AS_OF].max()),
        n_train=len(rows),
        n_holdout=0,
        leaks=tuple(leaks),
    )
    grades = derive_cutoffs(probability, base_rate, leads_per_month(frames), None)
    return Scorer(schema, rules, identity, grades, card)
