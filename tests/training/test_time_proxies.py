"""Time proxies judged by what they do to the newest validation leads, per candidate, on a
funnel made for it: a shift in who the leads are is kept, a code whose meaning broke is
dropped, and a calendar value that tracks a rising win rate helps the linear model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.schema import LeadField, LeadSchema
from training.candidates import CandidateConfig, encode_split
from training.dataset import AS_OF, LABEL, WEIGHT
from training.pipeline import fit_models
from training.split import time_split
from training.time_proxies import time_shifts


def funnel(fields: dict[str, str], seed: int = 7) -> tuple[pd.DataFrame, LeadSchema]:
    """Leads over a year whose mix and meaning move with time, with `fields` (name: type) of:

    - `signal`: a stable, strong effect; its distribution does not move.
    - `age`: older leads arrive later (a shift in who the leads are); its effect is stable.
    - `calendar`: the moment itself (a macro indicator); the win rate rises with it.
    - `legacy_code`: "p" wins more until 69% of the year (the validation leads start at 68%),
      then its meaning flips, and "p" becomes commoner as it does.
    """
    rng = np.random.default_rng(seed)
    n = 8_000
    t = np.sort(rng.random(n))
    columns = {
        "signal": rng.normal(size=n),
        "age": rng.normal(35 + 20 * t, 6),
        "calendar": np.round(t * 12, 1),
    }
    log_odds = -1.5 + 1.2 * columns["signal"] + 0.04 * (columns["age"] - 45) + 1.5 * t
    if "legacy_code" in fields:
        late = t > 0.69
        is_p = rng.random(n) < np.where(late, 0.75, 0.35)
        log_odds = log_odds + 1.0 * np.where(is_p, 1.0, -1.0) * np.where(late, -1.0, 1.0)
        columns["legacy_code"] = np.where(is_p, "p", "q")
    label = (rng.random(n) < 1 / (1 + np.exp(-log_odds))).astype(int)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    rows = pd.DataFrame(
        {
            "lead_id": [f"l{i:05d}" for i in range(n)],
            AS_OF: start + pd.to_timedelta(t * 365, unit="D"),
            LABEL: label,
            WEIGHT: 1.0,
            **{name: columns[name] for name in fields},
        }
    )
    schema = LeadSchema(
        name="drifting",
        fields=(
            LeadField(name="lead_id", type="text", role="id"),
            *(LeadField(name=name, type=kind) for name, kind in fields.items()),
        ),
    )
    return rows, schema


def judge(rows: pd.DataFrame, schema: LeadSchema) -> dict:
    """What a run does: nominate on the outer split, judge on the inner one."""
    outer = time_split(rows, 0.2)
    every = frozenset(f.name for f in schema.model_fields_in_order)
    shifts = time_shifts(schema, outer.older, outer.newer, every)
    inner = time_split(outer.older, 0.15)
    data = encode_split(schema, inner.older, inner.newer)
    fitted, decisions = fit_models(schema, data, CandidateConfig(), shifts)
    return {
        "shifts": shifts,
        "fitted": fitted,
        "decisions": {(d.model_kind, d.field): d for d in decisions},
    }


KINDS = ("lightgbm", "lightgbm_recency", "logistic_regression")
SHIFTING = {"signal": "numeric", "age": "numeric", "calendar": "numeric"}


@pytest.fixture(scope="module")
def shifting() -> dict:
    return judge(*funnel(SHIFTING))


@pytest.fixture(scope="module")
def broken() -> dict:
    return judge(*funnel({"signal": "numeric", "legacy_code": "categorical"}))


def test_only_fields_that_moved_with_time_are_nominated(shifting: dict, broken: dict) -> None:
    assert {shift.field for shift in shifting["shifts"]} == {"age", "calendar"}
    assert {shift.field for shift in broken["shifts"]} == {"legacy_code"}


def test_a_shift_in_who_the_leads_are_is_kept_by_every_candidate(shifting: dict) -> None:
    for kind in KINDS:
        decision = shifting["decisions"][(kind, "age")]
        assert not decision.excluded, decision
        assert "age" in shifting["fitted"][kind].scorer.feature_fields


def test_a_calendar_value_that_tracks_the_win_rate_helps_the_linear_model(
    shifting: dict,
) -> None:
    decision = shifting["decisions"][("logistic_regression", "calendar")]
    assert not decision.excluded and decision.auc_with > decision.auc_without
    assert "calendar" in shifting["fitted"]["logistic_regression"].scorer.feature_fields


def test_a_code_whose_meaning_broke_is_dropped_by_every_candidate(broken: dict) -> None:
    for kind in KINDS:
        decision = broken["decisions"][(kind, "legacy_code")]
        assert decision.excluded and decision.auc_without > decision.auc_with, decision
        assert broken["fitted"][kind].scorer.feature_fields == ["signal"]


def test_the_rules_baseline_never_reads_a_nominated_field(shifting: dict) -> None:
    assert shifting["fitted"]["rules"].scorer.feature_fields == ["signal"]


def test_a_field_accepted_in_the_schema_is_not_nominated() -> None:
    rows, schema = funnel(SHIFTING)
    document = schema.model_dump()
    for field in document["fields"]:
        if field["name"] == "calendar":
            field["accept_leak"] = "A macro indicator we want every model to read; 2026-11."
    accepted = LeadSchema.model_validate(document)
    outer = time_split(rows, 0.2)
    shifts = time_shifts(accepted, outer.older, outer.newer, frozenset(SHIFTING))
    assert [(s.field, s.auc > 0.6) for s in shifts] == [("age", True)]
