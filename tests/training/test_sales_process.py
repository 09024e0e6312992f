"""Sales-process leaks, which no single-field AUC catches: numbers that grow with the time a
deal took to close, and names of the sales process, on data made for it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.schema import LeadField, LeadSchema
from training.dataset import CREATED_AT, LABEL, OCCURRED_AT, OUTCOME
from training.leakage import find_leaks, words

NO_OPEN_LEADS = pd.DataFrame()
NEUTRAL = ("touches_logged", "handoffs", "company_size", "webinar_visits")


def schema_of(*fields: LeadField) -> LeadSchema:
    return LeadSchema(name="t", fields=(LeadField(name="id", type="text", role="id"), *fields))


@pytest.fixture(scope="module")
def pipeline_leads() -> pd.DataFrame:
    return deals(span_days=730)


def deals(span_days: float) -> pd.DataFrame:
    """Closed deals created over `span_days`. Wins take longer than losses, and
    disqualifications are fast, so whatever predicts the outcome also predicts the time to
    close; only fields measured as the deal moves grow with it within an outcome:

    - `touches_logged`: calls and emails logged until the close (about one every 6 days);
    - `handoffs`: how many reps held the deal (one more per 40 days, roughly);
    - `company_size`: known at creation, predicts winning, says nothing about the pace;
    - `webinar_visits`: known at creation, predicts winning weakly.
    """
    rng = np.random.default_rng(3)
    n = 5_000
    size = rng.lognormal(4, 1, n)
    visits = rng.poisson(1.5, n)
    p_win = 1 / (1 + np.exp(-(-1.5 + 0.5 * (np.log(size) - 4) + 0.3 * visits)))
    draw = rng.random(n)
    outcome = np.where(draw < p_win, "won", np.where(draw < p_win + 0.15, "disqualified", "lost"))
    days = np.select(
        [outcome == "won", outcome == "lost"],
        [15 + rng.gamma(2, 20, n), 10 + rng.gamma(2, 25, n)],
        rng.gamma(1.5, 4, n),
    )
    created = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.random(n)) * span_days, unit="D"
    )
    return pd.DataFrame(
        {
            CREATED_AT: created,
            OCCURRED_AT: created + pd.to_timedelta(days, unit="D"),
            OUTCOME: outcome,
            LABEL: (outcome == "won").astype(int),
            "touches_logged": rng.poisson(days / 6),
            "handoffs": 1 + rng.poisson(days / 40),
            "company_size": np.round(size),
            "webinar_visits": visits,
        }
    )


def numeric(*names: str) -> LeadSchema:
    return schema_of(*(LeadField(name=name, type="numeric") for name in names))


def test_numbers_that_grow_with_the_time_to_close_are_flagged(
    pipeline_leads: pd.DataFrame,
) -> None:
    leaks = {
        leak.field: leak for leak in find_leaks(numeric(*NEUTRAL), pipeline_leads, NO_OPEN_LEADS)
    }
    assert set(leaks) == {"touches_logged", "handoffs"}
    assert all(leak.check == "sales_process" and leak.excluded for leak in leaks.values())
    assert "grows with the lead's time to close" in leaks["touches_logged"].why


def test_without_real_closing_dates_the_time_check_is_silent(
    pipeline_leads: pd.DataFrame,
) -> None:
    """Exports without a close date close each lead at its creation: nothing to correlate."""
    undated = pipeline_leads.assign(**{OCCURRED_AT: pipeline_leads[CREATED_AT]})
    assert find_leaks(numeric(*NEUTRAL), undated, NO_OPEN_LEADS) == []


def test_leads_too_young_to_have_closed_slowly_are_left_out() -> None:
    """A lead number grows with creation time; among recent leads only the fast closers have
    closed, so counted naively it would shrink with the time to close."""
    recent = deals(span_days=80)
    counted = recent.assign(lead_number=np.arange(len(recent)))
    closed_by_now = counted[counted[OCCURRED_AT] <= counted[CREATED_AT].max()]
    assert find_leaks(numeric("lead_number", "company_size"), closed_by_now, NO_OPEN_LEADS) == []


@pytest.mark.parametrize(
    ("name", "suspect"),
    [
        ("stage_changes", True),
        ("daysToClose", True),
        ("Lead Status", True),
        ("days_in_negotiation", True),
        ("Total Days Identification To Closing", True),
        ("loss_reason", True),
        ("page_views", False),
        ("days_since_first_touch", False),
        ("Total Time Spent on Website", False),
        ("company_size", False),
    ],
)
def test_names_of_the_sales_process_are_suspect(
    pipeline_leads: pd.DataFrame, name: str, suspect: bool
) -> None:
    rows = pipeline_leads.assign(**{name: pipeline_leads["company_size"]})
    leaks = find_leaks(numeric(name), rows, NO_OPEN_LEADS)
    assert bool(leaks) is suspect
    if suspect:
        assert leaks[0].check == "suspect_name" and leaks[0].excluded


def test_a_suspect_name_named_by_the_user_as_source_or_accepted_is_kept(
    pipeline_leads: pd.DataFrame,
) -> None:
    rows = pipeline_leads.assign(deal_stage="web", status_code=pipeline_leads["company_size"])
    schema = schema_of(
        LeadField(name="deal_stage", type="categorical", role="source"),
        LeadField(
            name="status_code",
            type="numeric",
            accept_leak="Set once by the web form, before sales sees the lead.",
        ),
    )
    (leak,) = find_leaks(schema, rows, NO_OPEN_LEADS)
    assert leak.field == "status_code" and not leak.excluded


def test_words_split_every_naming_style() -> None:
    assert words("daysInStage") == {"days", "in", "stage"}
    assert words("Days in stage (avg.)") == {"days", "in", "stage", "avg"}
    assert words("days_in_stage2") == {"days", "in", "stage2"}
