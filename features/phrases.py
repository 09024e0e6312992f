"""Reasons in a sales rep's words: "Came from a webinar: +12", "Company size unknown: -8".

A reason names a field, the lead's value and its points; the schema may give each field phrases
per value, per direction of its effect and for a missing value (`schema.ReasonPhrases`).
Without one a reason reads "Field is value". A number also says where it stands among the leads
the model learned from, when it is at either end ("14 page views (top 10%)"): a rep cannot tell
whether 14 is many.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from features.encoding import FeatureEncoder, category_label, is_missing
from features.schema import FieldType, LeadField, LeadSchema

#: The shares of the training leads a number must stand above (or below) to be called the top
#: (or bottom) share of them, the narrowest first.
STANDINGS = (0.10, 0.25)


@dataclass(frozen=True)
class Phrasebook:
    """The words of the reasons of one model (its fields' quantiles) under one lead schema."""

    schema: LeadSchema
    quantiles: dict[str, tuple[float, ...]]

    @classmethod
    def of(cls, schema: LeadSchema, encoder: FeatureEncoder) -> Phrasebook:
        return cls(schema, {c.name: c.quantiles for c in encoder.columns if c.quantiles})

    def text(self, name: str, value: Any, impact: float) -> str:
        field = self.schema.by_name.get(name)
        return reason_text(field, name, value, impact, self.quantiles.get(name, ()))


def reason_text(
    field: LeadField | None,
    name: str,
    value: Any,
    impact: float,
    quantiles: Sequence[float],
) -> str:
    """The words of one reason on field `name` (`field` None: a field the schema no longer has).
    `quantiles` are the field's values at evenly spaced shares of the training leads (empty
    when unknown)."""
    phrases = field.phrases if field else None
    if is_missing(value):
        return (phrases.missing if phrases else None) or f"{field_label(name)} is unknown"
    shown = shown_value(value)
    phrase = None
    if phrases is not None:
        label = category_label(value)
        phrase = phrases.values.get(label.lower() if isinstance(value, bool) else label or "")
        phrase = phrase or (phrases.raises if impact > 0 else phrases.lowers)
    text = phrase.format(value=shown) if phrase else f"{field_label(name)} is {shown}"
    if field is not None and field.type is FieldType.NUMERIC:
        standing = _standing(float(value), quantiles)
        text += f" ({standing})" if standing else ""
    return text


def field_label(name: str) -> str:
    """A field name as a rep reads it: "company_size" -> "Company size"."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def shown_value(value: Any) -> str:
    """A value as a rep reads it: "yes", "1,250", "2.5", "0.035"."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and math.isfinite(value):
        number = float(value) + 0.0  # -0.0 reads as 0
        if number.is_integer():
            return f"{number:,.0f}"
        if abs(number) >= 1:
            return f"{number:,.2f}".rstrip("0").rstrip(".")
        return f"{number:.2g}"
    return str(value)


def _standing(value: float, quantiles: Sequence[float]) -> str | None:
    """ "top 10%", "bottom 25%"... when `value` lies at either end of the training leads."""
    if len(quantiles) < 2:
        return None
    steps = len(quantiles) - 1
    # The share of training leads surely under `value`, and the share at most at or under it:
    # between two kept quantiles the share is only known to lie between theirs.
    below = max(bisect_left(quantiles, value) - 1, 0) / steps
    at_or_below = bisect_right(quantiles, value) / steps
    for share in STANDINGS:
        if below >= 1 - share:
            return f"top {share:.0%}"
        if at_or_below <= share:
            return f"bottom {share:.0%}"
    return None
