"""The card's words and numbers: the change sentence, whole points that add up, the reader's
formats, and the signed links (pure functions, no service)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.score_change import FieldChange, ScoreChange
from serving.card_links import BadCardLink, CardLinkRefused, CardLinks, card_path
from serving.lead_card import BadCardOption, Formats, change_sentence, whole_points
from serving.lead_views import LeadChange
from store.tables import ScoreSnapshot

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
EN = Formats.of("en", None, None)


def snapshot(score: int, version: str = "3", days: int = 0) -> ScoreSnapshot:
    return ScoreSnapshot(
        scored_at=T0 + timedelta(days=days), score=score, model_version=version, features={}
    )


def change(
    old: int, new: int, fields: list[tuple[str, object, object, float]], model: float = 0.0,
    versions: tuple[str, str] = ("3", "3"),
) -> LeadChange:  # fmt: skip
    split = ScoreChange([FieldChange(*f) for f in fields], sum(f[3] for f in fields), model)
    return LeadChange("l", snapshot(old, versions[0]), snapshot(new, versions[1], 7), split)


@given(
    parts=st.lists(st.floats(-60, 60, allow_nan=False), min_size=1, max_size=8),
    off=st.floats(-0.99, 0.99),
)
def test_whole_points_add_up_and_stay_within_a_point(parts: list[float], off: float) -> None:
    total = round(sum(parts) + off)
    whole = whole_points(parts, total)
    assert sum(whole) == total
    assert all(abs(w - p) < 2 for w, p in zip(whole, parts, strict=True))
    assert whole_points([], 0) == []


def test_the_sentence_names_the_fields_that_moved_the_score_most() -> None:
    sentence = change_sentence(
        change(
            42, 57,
            [("page_views", 3, 14, 9.4), ("source", "email", "webinar", 2.2),
             ("company_size", None, 250, 1.1), ("industry", "retail", "saas", 0.6),
             ("demo_requested", False, True, 1.3)],
            model=0.1,
        ),
        EN,
    )  # fmt: skip
    assert sentence == (
        "Up 15 points since Nov 3, 2026 (42 \u2192 57): +15 from the lead's data "
        "(Page views 3 \u2192 14: +10; Source email \u2192 webinar: +2; Demo requested no "
        "\u2192 yes: +1; 2 other changes: +2)."
    )


def test_the_sentence_says_a_new_model_and_a_move_of_less_than_a_point() -> None:
    by_model = change_sentence(change(60, 58, [], model=-2.3, versions=("3", "4")), EN)
    assert by_model == (
        "Down 2 points since Nov 3, 2026 (60 \u2192 58): \u22122 from a new model "
        "(version 3 \u2192 4)."
    )
    small = change_sentence(change(30, 30, [("page_views", 3, 4, 0.2)]), EN)
    assert small == (
        "No change since Nov 3, 2026 (30): its data changed (Page views) but moved it by "
        "less than a point."
    )
    one_other = change_sentence(
        change(10, 14, [("a", 1, 2, 1.0), ("b", 1, 2, 1.0), ("c", 1, 2, 1.0), ("d", 1, 2, 1.0)]),
        EN,
    )
    assert "1 other change: +1" in one_other
    unexplained = LeadChange("l", snapshot(10), snapshot(12, days=1), None, "version 3 is gone")
    assert change_sentence(unexplained, EN).endswith("; why cannot be told: version 3 is gone.")


def test_numbers_and_dates_read_in_the_readers_language() -> None:
    german = Formats.of("de", None, "Europe/Berlin")
    sentence = change_sentence(change(1, 9, [("revenue", 1250.5, 20000, 8.0)]), german)
    assert "03.11.2026" in sentence and "1.250,5 \u2192 20.000" in sentence
    assert Formats.of(None, "fr-CH,fr;q=0.9", None).locale.territory == "CH"
    assert str(Formats.of(None, "xx, *;q=0.1", None).locale) == "en"
    refused_options = [
        ("xx-nowhere", None, "lang"),
        (None, "Europe", "tz"),  # a folder of zones
        (None, "Mars/Olympus", "tz"),
        (None, "../etc/passwd", "tz"),
    ]
    for lang, tz, where in refused_options:
        with pytest.raises(BadCardOption) as refused:
            Formats.of(lang, None, tz)
        assert refused.value.parameter == where


KEY = b"k" * 32


def test_a_link_opens_its_lead_until_it_expires_and_nothing_else() -> None:
    links = CardLinks(KEY, 600)
    link = links.link("https://leads.example.com/", "a/../b c?#", T0, 300)
    assert link.url.startswith("https://leads.example.com/v1/leads/a%2F..%2Fb%20c%3F%23/card?")
    assert link.expires_at == T0 + timedelta(seconds=300)
    query = dict(part.split("=") for part in link.url.split("?")[1].split("&"))
    links.check("a/../b c?#", query["expires"], query["signature"], T0)
    for lead, expires, now in (
        ("a/../b", query["expires"], T0),
        ("a/../b c?#", str(int(query["expires"]) + 1), T0),
        ("a/../b c?#", query["expires"], T0 + timedelta(seconds=300)),
    ):
        with pytest.raises(CardLinkRefused):
            links.check(lead, expires, query["signature"], now)
    with pytest.raises(CardLinkRefused):  # signed with another key
        CardLinks(b"o" * 32, 600).check("a/../b c?#", query["expires"], query["signature"], T0)
    refused = [("", "x", 601, "expires_in"), ("", "..", 60, "lead_id"), ("", ".", 60, "lead_id")]
    refused += [
        (base, "x", 60, "base_url")
        for base in ("notaurl", "javascript:alert(1)", "ftp://x", "https://x/s?x=1", "https://x#f")
    ]
    for base, lead, seconds, field in refused:
        with pytest.raises(BadCardLink) as bad:
            links.link(base, lead, T0, seconds)
        assert bad.value.field == field, (base, lead)
    assert links.link("http://127.0.0.1:8000/", "...", T0, 60).url.startswith(
        "http://127.0.0.1:8000/v1/leads/.../card?"
    )
    assert links.link("", "x", T0, None).expires_at == T0 + timedelta(seconds=600)
    assert card_path("x/y") == "/v1/leads/x%2Fy/card"


def test_a_short_key_signs_nothing() -> None:
    for key in (b"", b"short"):
        with pytest.raises(ValueError, match="at least 32"):
            CardLinks(key, 600)
