"""The lead card a sales rep reads inside the CRM, and the one sentence of why a score moved.

The card is one self-contained HTML page (no script, no external asset, its only style inline
and allowed by hash) meant for a CRM's frame: score and grade, the top reasons in the schema's
words, the score's history as a small chart with the same numbers in a table, why it last
moved, and which model scored it when. Numbers and dates follow the reader's language (`lang`,
else the browser's `Accept-Language`) and time zone (`tz`); the words come from the schema.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from jinja2 import Environment, PackageLoader, StrictUndefined

from features.encoding import is_missing
from features.phrases import field_label, shown_value
from serving.lead_views import LeadCard, LeadChange
from store.records import json_value

#: Field changes a sentence names before it sums up the rest.
NAMED_CHANGES = 3
#: The history chart's size in CSS pixels (it scales down with the frame).
CHART_WIDTH, CHART_HEIGHT = 360, 80


class BadCardOption(ValueError):
    """A `lang` or `tz` the card cannot use; `parameter` names which."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True)
class Formats:
    """How numbers and times read for one reader."""

    locale: Locale
    zone: ZoneInfo

    @classmethod
    def of(cls, lang: str | None, accept_language: str | None, tz: str | None) -> Formats:
        """The reader's formats: `lang` if given (else the browser's first language, else
        English) and `tz` (else UTC). Raises `BadCardOption` for an unknown `lang` or `tz`."""
        return cls(_locale(lang, accept_language), _zone(tz))

    def number(self, value: float) -> str:
        return format_decimal(value, format="#,##0", locale=self.locale)

    def value(self, value: object) -> str:
        """A field's value: "unknown", "yes", "1.250,5" in German, a category as it is."""
        if is_missing(value):
            return "unknown"
        if isinstance(value, int | float) and not isinstance(value, bool):
            return format_decimal(value, format="#,##0.##", locale=self.locale)
        return shown_value(value)

    def points(self, value: int) -> str:
        """A signed whole number of points: "+9", "−3" (a true minus sign), "0"."""
        shown = format_decimal(abs(value), format="#,##0", locale=self.locale)
        return f"+{shown}" if value > 0 else f"\u2212{shown}" if value < 0 else shown

    def day(self, moment: datetime) -> str:
        return format_date(moment.astimezone(self.zone), "medium", locale=self.locale)

    def moment(self, moment: datetime) -> str:
        return format_datetime(moment, "medium", tzinfo=self.zone, locale=self.locale)


def _locale(lang: str | None, accept_language: str | None) -> Locale:
    if lang:  # an empty `lang=` is no language, as an empty `tz=` is no zone
        try:
            return Locale.parse(lang.replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError) as exc:
            raise BadCardOption(
                "lang", f"unknown language {lang!r}: use a tag like en or de-CH"
            ) from exc
    for tag in (accept_language or "").split(","):
        try:
            return Locale.parse(tag.split(";")[0].strip().replace("-", "_"))
        except (UnknownLocaleError, ValueError, TypeError):
            continue  # a browser's odd entry is skipped, not an error
    return Locale("en")


def _zone(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # "Europe" is a folder
        raise BadCardOption(
            "tz", f"unknown time zone {tz!r}: use a name like Europe/Paris"
        ) from exc


def whole_points(parts: Sequence[float], total: int) -> list[int]:
    """`parts` rounded to whole numbers that add up to `total` (largest remainders): shares of
    a change a rep can add up in their head, each within one point of its exact value."""
    if not parts:
        return []
    floors = [math.floor(p) for p in parts]
    left = total - sum(floors)
    by_remainder = sorted(range(len(parts)), key=lambda i: parts[i] - floors[i], reverse=True)
    step = 1 if left > 0 else -1
    order = by_remainder if left > 0 else by_remainder[::-1]
    for k in range(abs(left)):
        floors[order[k % len(order)]] += step
    return floors


def change_sentence(change: LeadChange, formats: Formats) -> str:
    """Why the score moved, in one sentence: "Up 15 points since 3 Nov 2026 (42 → 57): +11
    from the lead's data (Page views 3 → 14: +9) and +4 from a new model (version 3 → 7).\""""
    earlier, later = change.earlier, change.later
    moved = later.score - earlier.score
    scores = f"{formats.number(earlier.score)} \u2192 {formats.number(later.score)}"
    since = formats.day(earlier.scored_at)
    head = (
        f"{'Up' if moved > 0 else 'Down'} {formats.number(abs(moved))} "
        f"{'point' if abs(moved) == 1 else 'points'} since {since} ({scores})"
        if moved
        else f"No change since {since} ({formats.number(later.score)})"
    )
    if change.split is None:
        return f"{head}; why cannot be told: {change.unexplained}."
    data, model = whole_points([change.split.data_points, change.split.model_points], moved)
    parts = []
    if change.split.fields:
        parts.append(_data_part(change, data, formats))
    if earlier.model_version != later.model_version:
        versions = f"version {earlier.model_version} \u2192 {later.model_version}"
        parts.append(f"{formats.points(model)} from a new model ({versions})")
    if not parts:
        return f"{head}: neither the lead's data nor the model changed."
    return f"{head}: {' and '.join(parts)}."


def _data_part(change: LeadChange, data: int, formats: Formats) -> str:
    """The lead's data's share, the fields that moved it most first:
    "+11 from the lead's data (Page views 3 → 14: +9; Source email → webinar: +2)"."""
    assert change.split is not None
    fields = change.split.fields
    whole = whole_points([f.points for f in fields], data)
    ranked = sorted(zip(fields, whole, strict=True), key=lambda fw: -abs(fw[0].points))
    moving = [(f, points) for f, points in ranked if points]
    if not moving:
        changed = ", ".join(field_label(f.field) for f in fields[:NAMED_CHANGES])
        more = f" and {len(fields) - NAMED_CHANGES} more" if len(fields) > NAMED_CHANGES else ""
        return f"its data changed ({changed}{more}) but moved it by less than a point"
    named = [
        f"{field_label(f.field)} {formats.value(f.old_value)} \u2192 "
        f"{formats.value(f.new_value)}: {formats.points(points)}"
        for f, points in moving[:NAMED_CHANGES]
    ]
    rest = moving[NAMED_CHANGES:]
    if rest:
        others = sum(points for _, points in rest)
        noun = "change" if len(rest) == 1 else "changes"
        named.append(f"{len(rest)} other {noun}: {formats.points(others)}")
    return f"{formats.points(data)} from the lead's data ({'; '.join(named)})"


def change_answer(change: LeadChange, formats: Formats) -> dict[str, Any]:
    """The `/changes` answer: both scores, the parts to the hundredth of a point, the sentence."""
    moved = change.later.score - change.earlier.score
    split = change.split
    fields = sorted(split.fields, key=lambda f: -abs(f.points)) if split else []
    exact = split.data_points + split.model_points if split else None
    return {
        "lead_id": change.lead_id,
        "earlier": change.earlier,
        "later": change.later,
        "score_change": moved,
        "data_points": round(split.data_points, 2) if split else None,
        "model_points": round(split.model_points, 2) if split else None,
        "rounding_points": None if exact is None else round(moved - exact, 2),
        "fields": [
            {
                "field": f.field,
                "old_value": json_value(f.old_value),
                "new_value": json_value(f.new_value),
                "points": round(f.points, 2),
            }
            for f in fields
        ],
        "summary": change_sentence(change, formats),
    }


# --- The page ---------------------------------------------------------------------------------

#: The language of the card's words (the template's and, as written, the schema's phrases):
#: `lang` changes how numbers and dates read, not the words.
PAGE_LANGUAGE = "en"


@cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("serving", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def card_style() -> str:
    """The card's one style sheet, allowed by its hash: no other style, and no script, runs."""
    return _templates().get_template("card.css").render()


def card_policy(frame_ancestors: Sequence[str]) -> str:
    """The card's Content-Security-Policy: nothing loads but its own style, and only
    `frame_ancestors` may frame it (none: no one)."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    digest = base64.b64encode(hashlib.sha256(card_style().encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; "
        f"base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
    )


def history_points(scores: Sequence[int], width: int, height: int) -> list[tuple[float, float]]:
    """Where each score of the history sits in the chart, oldest left, 0 at the bottom."""
    if len(scores) == 1:
        return [(width / 2, height * (1 - scores[0] / 100))]
    step = width / (len(scores) - 1)
    return [(i * step, height * (1 - s / 100)) for i, s in enumerate(scores)]


def render_card(card: LeadCard, formats: Formats) -> str:
    """The card of `card`'s lead as a page."""
    latest = card.latest
    oldest_first = list(reversed(card.history))
    points = history_points([s.score for s in oldest_first], CHART_WIDTH, CHART_HEIGHT)
    return (
        _templates()
        .get_template("card.html")
        .render(
            card=card,
            latest=latest,
            lang=PAGE_LANGUAGE,
            fmt=formats,
            style=card_style(),
            change=change_sentence(card.change, formats) if card.change else None,
            reasons=[(r, round(r["impact"])) for r in card.reasons if round(r["impact"])],
            chart=" ".join(f"{x:.1f},{y:.1f}" for x, y in points),
            last_point=points[-1],
            history=oldest_first,
            width=CHART_WIDTH,
            height=CHART_HEIGHT,
        )
    )


def error_page(message: str) -> str:
    """A page that says, in the card's frame, why there is no card."""
    page = _templates().get_template("card_error.html")
    return page.render(lang=PAGE_LANGUAGE, message=message, style=card_style())
