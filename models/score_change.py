"""Why a lead's score moved between two scores: how much its data, how much a new model.

The change from score S0 (model M0 on the lead's data x0) to S1 (M1 on x1) is split in two:
- the data part, M0(x1) - M0(x0): the same model on the old and the new data, shared out among
  the fields whose value changed by their Shapley values. Each changed field gets its average
  effect over every order in which the changes could have been made, so no field is favoured by
  coming first, a field the model ignores gets nothing, and the shares add up exactly to the
  data part (efficiency);
- the model part, M1(x1) - M0(x1): the same new data scored by both models.
The two add up to M1(x1) - M0(x0), the change in probability, exactly; the stored scores are
rounded to whole points, so they differ from it by less than one point, reported as rounding.
Everything is in score points (100 x probability), the unit a rep reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features.encoding import is_missing
from models.scorer import Scorer

#: Up to this many changed fields the Shapley values are exact (2^n scorings); beyond, they
#: are averaged over `_PERMUTATIONS` random orders, each of which adds up exactly all the same.
MAX_EXACT_FIELDS = 10
_PERMUTATIONS = 64
_SEED = 0


@dataclass(frozen=True)
class FieldChange:
    field: str
    old_value: Any
    new_value: Any
    #: Score points the change of this field brought (under the earlier score's model).
    points: float


@dataclass(frozen=True)
class ScoreChange:
    """A score change split into its parts, in score points; `data_points` is the sum of
    `fields`' points, and `data_points + model_points` is 100 x the change in probability."""

    fields: list[FieldChange]
    data_points: float
    model_points: float


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Fields whose value differs between two leads, in the order the new lead names them."""
    names = list(new) + [name for name in old if name not in new]
    return [name for name in names if not _same(old.get(name), new.get(name))]


def explain_change(
    old_model: Scorer,
    new_model: Scorer,
    old_lead: Mapping[str, Any],
    new_lead: Mapping[str, Any],
    exact_up_to: int = MAX_EXACT_FIELDS,
) -> ScoreChange:
    """Split the change from `old_model` on `old_lead` to `new_model` on `new_lead` (Shapley
    values exact up to `exact_up_to` changed fields, sampled beyond)."""
    names = changed_fields(old_lead, new_lead)
    points = _shapley_points(old_model, old_lead, new_lead, names, exact_up_to)
    data = float(points.sum())
    p_new = new_model.predict_proba([new_lead])[0]
    p_old_on_new = old_model.predict_proba([new_lead])[0]
    return ScoreChange(
        fields=[
            FieldChange(name, old_lead.get(name), new_lead.get(name), float(share))
            for name, share in zip(names, points, strict=True)
        ],
        data_points=data,
        model_points=float(100.0 * (p_new - p_old_on_new)),
    )


def _shapley_points(
    model: Scorer,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    names: Sequence[str],
    exact_up_to: int,
) -> np.ndarray:
    """Each changed field's Shapley value of moving `model`'s score from `old` to `new`."""
    n = len(names)
    if n == 0:
        return np.zeros(0)
    if n <= exact_up_to:
        return _exact_shapley(model, old, new, names)
    return _sampled_shapley(model, old, new, names)


def _exact_shapley(
    model: Scorer, old: Mapping[str, Any], new: Mapping[str, Any], names: Sequence[str]
) -> np.ndarray:
    """Shapley values over every subset of changes: subset `m` (a bitmask) takes the fields
    in it from `new`, the others from `old`."""
    n = len(names)
    masks = np.arange(2**n)
    value = 100.0 * model.predict_proba([_mixed(old, new, names, int(m)) for m in masks])
    sizes = np.array([int(m).bit_count() for m in masks])
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) for s in range(n)])
    weight = weight / math.factorial(n)
    shares = np.zeros(n)
    for i in range(n):
        without = masks[(masks >> i) & 1 == 0]
        gains = value[without | (1 << i)] - value[without]
        shares[i] = float(np.sum(weight[sizes[without]] * gains))
    return shares


def _sampled_shapley(
    model: Scorer, old: Mapping[str, Any], new: Mapping[str, Any], names: Sequence[str]
) -> np.ndarray:
    """Shapley values averaged over random orders of the changes (seeded: the same answer
    every time). Each order's gains add up to the whole change, so their average does too."""
    n = len(names)
    orders = np.random.default_rng(_SEED).permuted(
        np.tile(np.arange(n), (_PERMUTATIONS, 1)), axis=1
    )
    leads = []
    for order in orders:
        mask = 0
        leads.append(_mixed(old, new, names, mask))
        for i in order:
            mask |= 1 << int(i)
            leads.append(_mixed(old, new, names, mask))
    value = (100.0 * model.predict_proba(leads)).reshape(_PERMUTATIONS, n + 1)
    gains = np.diff(value, axis=1)
    shares = np.zeros(n)
    for row, order in enumerate(orders):
        shares[order] += gains[row]
    return shares / _PERMUTATIONS


def _mixed(
    old: Mapping[str, Any], new: Mapping[str, Any], names: Sequence[str], mask: int
) -> dict[str, Any]:
    lead = dict(old)
    for i, name in enumerate(names):
        if mask >> i & 1:
            lead[name] = new.get(name)
    return lead


def _same(a: Any, b: Any) -> bool:
    """Equal values; any two missing ones alike (None and NaN both mean "unknown"); a yes is
    not the number 1."""
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    return a == b and isinstance(a, bool) == isinstance(b, bool)
