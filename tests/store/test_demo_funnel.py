"""The demo funnel is realistic enough to train on and tells the stories the reports must find."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from store.demo_funnel import (
    COLLAPSE_AT,
    COLLAPSING_SOURCE,
    END,
    START,
    DemoFunnel,
    generate_demo_funnel,
    load_demo_funnel,
)
from store.records import hash_pii
from store.tables import Base, Lead, OutcomeEvent
from tests.support import NOW, PII_KEY

SOURCES = {
    "webinar",
    "paid_search",
    "organic",
    "referral",
    "trade_show",
    "content_download",
    "partner",
    "outbound",
}
LEAD_TYPES = {"MQL", "SQL", "PQL", "CQL"}
SALES_RATING_CODES = {"hot": 2, "warm": 1, "cold": 0}


@pytest.fixture(scope="module")
def funnel() -> DemoFunnel:
    """The funnel `leadloop demo-data` writes: default size and seed."""
    return generate_demo_funnel()


@pytest.fixture(scope="module")
def stored_funnel() -> DemoFunnel:
    """A funnel small enough to load into each backend quickly; loading does not care how big."""
    return generate_demo_funnel(600, seed=1)


@pytest.fixture(scope="module")
def closed(funnel: DemoFunnel) -> pd.DataFrame:
    """Closed leads with their outcome and a `won` flag."""
    merged = funnel.leads.merge(funnel.outcomes, on="lead_id", validate="one_to_one")
    return merged.assign(won=merged["outcome"] == "won")


def test_same_seed_gives_the_same_funnel() -> None:
    """Tests and docs quote numbers of the demo; they must not move between runs."""
    first, second = generate_demo_funnel(2_000, seed=5), generate_demo_funnel(2_000, seed=5)
    pd.testing.assert_frame_equal(first.leads, second.leads)
    pd.testing.assert_frame_equal(first.outcomes, second.outcomes)
    pd.testing.assert_series_equal(first.true_probability, second.true_probability)


def test_another_seed_gives_another_funnel() -> None:
    """The seed must actually reach every random draw that matters."""
    first, other = generate_demo_funnel(2_000, seed=5), generate_demo_funnel(2_000, seed=6)
    assert not first.leads["created_at"].equals(other.leads["created_at"])
    assert not first.leads["source"].equals(other.leads["source"])
    assert not first.true_probability.equals(other.true_probability)


def test_non_positive_size_is_refused() -> None:
    """An empty funnel would only fail later, far from the mistake."""
    with pytest.raises(ValueError, match="n_leads"):
        generate_demo_funnel(0)


def test_default_funnel_is_big_and_long_enough(funnel: DemoFunnel) -> None:
    """Drift and time-split evaluation need many leads spread over more than a year."""
    leads = funnel.leads
    assert len(leads) >= 20_000
    assert leads["lead_id"].is_unique
    created = leads["created_at"]
    assert created.min() >= START and created.max() < END
    assert created.max() - created.min() >= pd.Timedelta(days=365)
    months = {(t.year, t.month) for t in created}
    assert len(months) >= 12


def test_every_source_and_lead_type_occurs(funnel: DemoFunnel, demo_schema: LeadSchema) -> None:
    """Per-source reports and the schema's declared categories need all of them in the data."""
    assert set(funnel.leads["source"]) == SOURCES
    assert set(funnel.leads["lead_type"]) == LEAD_TYPES
    assert set(demo_schema.by_name["source"].categories or ()) == SOURCES
    assert set(demo_schema.by_name["lead_type"].categories or ()) == LEAD_TYPES


def test_leads_carry_exactly_the_demo_schema_fields(
    funnel: DemoFunnel, demo_schema: LeadSchema
) -> None:
    """The demo must load through the same schema as a tenant's real leads."""
    assert list(funnel.leads.columns) == [f.name for f in demo_schema.fields]


def test_won_share_of_closed_leads_is_realistic(closed: pd.DataFrame) -> None:
    """B2B funnels win roughly one closed lead in seven; far off and the demo would mislead."""
    assert 0.10 <= closed["won"].mean() <= 0.20


def test_outcomes_are_closing_events_after_creation_and_before_the_end(
    funnel: DemoFunnel, closed: pd.DataFrame
) -> None:
    """An outcome before its lead existed or after "now" would leak the future into training."""
    assert set(funnel.outcomes["outcome"]) == {"won", "lost", "disqualified"}
    assert funnel.outcomes["event_id"].is_unique
    assert len(closed) == len(funnel.outcomes)  # every outcome belongs to a generated lead
    assert (closed["occurred_at"] > closed["created_at"]).all()
    assert (closed["occurred_at"] < END).all()
    assert 0 < len(funnel.outcomes) < len(funnel.leads)  # recent leads are still open


def test_amounts_only_on_won_outcomes(funnel: DemoFunnel) -> None:
    """Revenue reports sum amounts; a lost deal with an amount would inflate them."""
    outcomes = funnel.outcomes
    won = outcomes["outcome"] == "won"
    assert outcomes.loc[won, "amount"].notna().all()
    assert (outcomes.loc[won, "amount"] > 0).all()
    assert outcomes.loc[~won, "amount"].isna().all()


def win_rate_change(closed: pd.DataFrame, source: str) -> float:
    """Win rate of `source`'s closed leads created from COLLAPSE_AT on, over the earlier rate."""
    of_source = closed[closed["source"] == source]
    later = of_source["created_at"] >= COLLAPSE_AT
    return of_source.loc[later, "won"].mean() / of_source.loc[~later, "won"].mean()


def test_collapsing_source_stops_converting_while_others_hold(closed: pd.DataFrame) -> None:
    """The drift report's story: one source collapses at a known date, the rest do not."""
    assert win_rate_change(closed, COLLAPSING_SOURCE) < 0.5
    for source in SOURCES - {COLLAPSING_SOURCE}:
        assert 0.75 < win_rate_change(closed, source) < 1 / 0.75, source


def test_sales_rating_gives_the_outcome_away(closed: pd.DataFrame) -> None:
    """The leak story: a model fed sales_rating would look great and be useless at scoring."""
    rating = closed["sales_rating"].map(SALES_RATING_CODES)
    assert rating.notna().all()
    assert roc_auc_score(closed["won"], rating) > 0.8


def test_open_leads_have_no_sales_rating(funnel: DemoFunnel) -> None:
    """Sales rates a lead after the first call; open leads have not been called yet."""
    is_open = ~funnel.leads["lead_id"].isin(funnel.outcomes["lead_id"])
    assert is_open.any()
    assert funnel.leads.loc[is_open, "sales_rating"].isna().all()


def test_true_probability_is_a_probability_per_lead(funnel: DemoFunnel) -> None:
    """Tests compare the model's AUC with the best reachable one, lead by lead."""
    truth = funnel.true_probability
    assert list(truth.index) == list(funnel.leads["lead_id"])
    assert ((truth > 0) & (truth < 1)).all()


def test_true_probability_ranks_the_outcomes(closed: pd.DataFrame, funnel: DemoFunnel) -> None:
    """Outcomes are drawn from the true probability, so it must rank them well above chance."""
    truth = funnel.true_probability.loc[closed["lead_id"]].to_numpy()
    assert roc_auc_score(closed["won"], truth) > 0.7


def table_text(session: Session) -> str:
    """Every row of every store table as text, to search for what must not be stored."""
    parts = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(text(f"SELECT * FROM {table.name}")):
            parts.append(" ".join(str(value) for value in row))
    return "\n".join(parts).casefold()


def test_loading_stores_every_lead_and_outcome_without_raw_pii(
    sessions: sessionmaker[Session], stored_funnel: DemoFunnel, demo_schema: LeadSchema
) -> None:
    """The demo goes through the same PII hashing as real leads: no e-mail in the database."""
    with sessions.begin() as session:
        counts = load_demo_funnel(session, stored_funnel, demo_schema, PII_KEY, NOW)
    events = len(stored_funnel.outcomes) + len(stored_funnel.lifecycle)
    assert (counts.accepted, counts.duplicates) == (events, 0)
    with sessions() as session:
        lead_ids = set(session.scalars(select(Lead.lead_id)))
        event_ids = set(session.scalars(select(OutcomeEvent.event_id)))
        assert lead_ids == set(stored_funnel.leads["lead_id"])
        assert event_ids == set(stored_funnel.outcomes["event_id"]) | set(
            stored_funnel.lifecycle["event_id"]
        )
        first = stored_funnel.leads.iloc[0]
        stored = session.get(Lead, first["lead_id"])
        assert stored is not None
        assert stored.pii_hashes["email"] == hash_pii(first["email"], PII_KEY)
        assert stored.created_at == first["created_at"]
        assert stored.source == first["source"]
        dump = table_text(session)
    assert "@" not in dump
    for name in set(stored_funnel.leads["full_name"]):
        assert name.casefold() not in dump


def test_loading_again_adds_no_outcome_twice(
    sessions: sessionmaker[Session], stored_funnel: DemoFunnel, demo_schema: LeadSchema
) -> None:
    """`leadloop demo-data` may run twice; the second run must not double the outcomes."""
    with sessions.begin() as session:
        load_demo_funnel(session, stored_funnel, demo_schema, PII_KEY, NOW)
    with sessions.begin() as session:
        again = load_demo_funnel(session, stored_funnel, demo_schema, PII_KEY, NOW)
    events = len(stored_funnel.outcomes) + len(stored_funnel.lifecycle)
    assert (again.accepted, again.duplicates) == (0, events)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == len(stored_funnel.leads)
        stored = session.scalar(select(func.count()).select_from(OutcomeEvent))
    assert stored == events


def test_follow_up_is_faster_for_likelier_leads_and_precedes_closing(
    small_funnel: DemoFunnel,
) -> None:
    """Hand-over, then contact, then the outcome; hot leads are called sooner."""
    times = small_funnel.lifecycle.pivot_table(
        index="lead_id", columns="outcome", values="occurred_at", aggfunc="min"
    )
    contacted = times.dropna()
    assert (contacted["contacted"] > contacted["handed_over"]).all()
    closing = small_funnel.outcomes.set_index("lead_id")["occurred_at"]
    both = contacted.join(closing.rename("closed"), how="inner")
    assert (both["contacted"] < both["closed"]).all()
    hours = (contacted["contacted"] - contacted["handed_over"]).dt.total_seconds() / 3600
    likely = small_funnel.true_probability.reindex(hours.index)
    assert hours[likely > likely.median()].median() < hours[likely <= likely.median()].median()
    assert set(small_funnel.lifecycle["outcome"]) == {"handed_over", "contacted"}
