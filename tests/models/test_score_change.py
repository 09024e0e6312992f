"""The split of a score change into the lead's data and the model: its parts add up exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.schema import LeadSchema
from models.score_change import changed_fields, explain_change
from models.scorer import Scorer, to_score
from tests.models.conftest import KINDS
from tests.support import TrainedSetup

#: Plenty of random pairs, each a few dozen to a thousand scorings.
PAIRS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def leads(trained: TrainedSetup, demo_schema: LeadSchema) -> list[dict[str, Any]]:
    """Demo leads as the store's snapshots keep them (model fields only, None for missing)."""
    frame = trained.funnel.leads[[f.name for f in demo_schema.model_fields_in_order]].head(400)
    return [
        {k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]


def _pair(leads: list[dict[str, Any]], data: st.DataObject) -> tuple[dict, dict]:
    """Two leads: a random one, and a copy with a random subset of fields from another."""
    old = leads[data.draw(st.integers(0, len(leads) - 1))]
    donor = leads[data.draw(st.integers(0, len(leads) - 1))]
    taken = data.draw(st.sets(st.sampled_from(sorted(old))))
    return old, {name: donor[name] if name in taken else value for name, value in old.items()}


@PAIRS
@given(data=st.data())
def test_parts_add_up_to_the_score_difference(
    scorers: dict[str, Scorer], leads: list[dict[str, Any]], data: st.DataObject
) -> None:
    old_model = scorers[data.draw(st.sampled_from(KINDS))]
    new_model = scorers[data.draw(st.sampled_from(KINDS))]
    old, new = _pair(leads, data)
    change = explain_change(old_model, new_model, old, new)

    p_old = old_model.predict_proba([old])[0]
    p_new = new_model.predict_proba([new])[0]
    fields_sum = sum(f.points for f in change.fields)
    assert fields_sum == pytest.approx(change.data_points, abs=1e-9)
    assert change.data_points + change.model_points == pytest.approx(
        100 * (p_new - p_old), abs=1e-9
    )
    # The stored scores are whole points: the parts are off from them by rounding alone.
    shown = float(to_score(p_new) - to_score(p_old))
    assert abs(shown - (change.data_points + change.model_points)) <= 1.0
    assert [f.field for f in change.fields] == changed_fields(old, new)
    if old_model is new_model:
        assert change.model_points == 0.0


def test_unchanged_lead_and_same_model_explain_nothing(
    scorers: dict[str, Scorer], leads: list[dict[str, Any]]
) -> None:
    change = explain_change(scorers["lightgbm"], scorers["lightgbm"], leads[0], dict(leads[0]))
    assert change.fields == [] and change.data_points == 0.0 and change.model_points == 0.0


def test_a_field_the_model_does_not_read_gets_no_points(
    scorers: dict[str, Scorer], leads: list[dict[str, Any]]
) -> None:
    model = scorers["lightgbm"]
    old = {**leads[0], "campaign_note": "spring"}  # a field of the lead no model reads
    changed = next(n for n in model.feature_fields if leads[1].get(n) != old.get(n))
    new = {**old, "campaign_note": "autumn", changed: leads[1][changed]}
    shares = {f.field: f.points for f in explain_change(model, model, old, new).fields}
    assert set(shares) == {"campaign_note", changed}
    assert shares["campaign_note"] == 0.0 and shares[changed] != 0.0


def test_one_changed_field_takes_the_whole_data_part(
    scorers: dict[str, Scorer], leads: list[dict[str, Any]]
) -> None:
    model = scorers["logistic_regression"]
    old = leads[0]
    name = next(n for n in model.feature_fields if leads[1].get(n) != old.get(n))
    new = {**old, name: leads[1][name]}
    change = explain_change(model, model, old, new)
    expected = 100 * (model.predict_proba([new])[0] - model.predict_proba([old])[0])
    assert [f.field for f in change.fields] == [name]
    assert change.fields[0].points == pytest.approx(expected, abs=1e-12)
    assert (change.fields[0].old_value, change.fields[0].new_value) == (old[name], new[name])


def test_sampled_orders_add_up_and_approach_the_exact_values(
    scorers: dict[str, Scorer], leads: list[dict[str, Any]]
) -> None:
    model = scorers["lightgbm"]
    old, new = leads[0], dict(leads[1])
    exact = explain_change(model, model, old, new)
    sampled = explain_change(model, model, old, new, exact_up_to=0)
    assert len(exact.fields) >= 3
    assert sum(f.points for f in sampled.fields) == pytest.approx(exact.data_points, abs=1e-9)
    gap = np.abs([a.points - b.points for a, b in zip(exact.fields, sampled.fields, strict=True)])
    assert gap.max() <= max(1.0, 0.25 * abs(exact.data_points))
    again = explain_change(model, model, old, new, exact_up_to=0)
    assert again == sampled  # seeded: the same answer every time


def test_missing_values_are_alike_and_yes_is_not_one() -> None:
    assert changed_fields({"a": None, "b": True}, {"a": float("nan"), "b": 1}) == ["b"]
    assert changed_fields({"a": 1}, {"a": 1.0, "c": None}) == []
    assert changed_fields({"a": "x"}, {}) == ["a"]
