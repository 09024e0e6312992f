"""The bundled demo funnel: a synthetic B2B software company's leads and their sales outcomes.

Deterministic for a seed. The generator knows every lead's true conversion probability, so tests
can put the model's AUC beside the best AUC any model could reach on the same leads. It also
tells two stories that the reports must find:

- `COLLAPSING_SOURCE` stops converting from `COLLAPSE_AT` on (an ad campaign retargeted badly);
- `sales_rating` is filled in by sales after the first call and gives the outcome away; the demo
  schema marks it as not known at scoring time, so it never reaches the model.

Conversion depends only on fields the model may see, plus the collapse date, so the true
probability is the best any model of these fields can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import gamma
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from store.outcomes import Outcome
from store.records import json_value, lead_row
from store.repository import IngestCounts, add_outcomes, count_leads, upsert_leads

DEFAULT_LEADS = 24_000
START = datetime(2025, 8, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)  # START + 15 months: the demo store's "now"
COLLAPSING_SOURCE = "paid_search"
COLLAPSE_AT = datetime(2026, 4, 1, tzinfo=UTC)
COLLAPSE_LOGIT = -1.8

SOURCES = {  # share of leads, effect on the log-odds of winning
    "webinar": (0.12, 0.35),
    "paid_search": (0.19, 0.0),
    "organic": (0.17, 0.05),
    "referral": (0.07, 1.0),
    "trade_show": (0.06, 0.45),
    "content_download": (0.17, -0.55),
    "partner": (0.08, 0.75),
    "outbound": (0.14, -0.3),
}
LEAD_TYPES_BY_SOURCE = {  # P(MQL, SQL, PQL, CQL | source)
    "webinar": (0.70, 0.20, 0.00, 0.10),
    "paid_search": (0.60, 0.05, 0.10, 0.25),
    "organic": (0.40, 0.10, 0.35, 0.15),
    "referral": (0.30, 0.50, 0.20, 0.00),
    "trade_show": (0.50, 0.40, 0.00, 0.10),
    "content_download": (0.85, 0.05, 0.00, 0.10),
    "partner": (0.40, 0.45, 0.15, 0.00),
    "outbound": (0.40, 0.60, 0.00, 0.00),
}
LEAD_TYPES = {"MQL": 0.0, "SQL": 0.7, "PQL": 0.6, "CQL": 0.2}
INDUSTRIES = {
    "software": (0.25, 0.4),
    "financial_services": (0.13, 0.3),
    "healthcare": (0.11, 0.1),
    "manufacturing": (0.12, 0.0),
    "retail": (0.10, -0.2),
    "education": (0.09, -0.5),
    "government": (0.06, -0.4),
    "other": (0.14, -0.2),
}
COUNTRIES = {
    "US": (0.42, 0.2),
    "UK": (0.10, 0.15),
    "DE": (0.08, 0.1),
    "FR": (0.05, 0.0),
    "CA": (0.06, 0.1),
    "AU": (0.04, 0.1),
    "NL": (0.03, 0.1),
    "IN": (0.08, -0.5),
    "BR": (0.05, -0.4),
    "other": (0.09, -0.3),
}
SENIORITIES = {
    "c_level": (0.07, 0.3),
    "vp": (0.10, 0.5),
    "director": (0.18, 0.45),
    "manager": (0.27, 0.15),
    "individual_contributor": (0.30, -0.2),
    None: (0.08, -0.2),
}
DECISION_MAKERS = ("c_level", "vp", "director")
INTERCEPT = -4.35
LOST_REASONS = ("price", "competitor", "no_decision", "timing", "missing_feature")
DISQUALIFIED_REASONS = ("not_a_fit", "no_budget", "student", "spam", "wrong_region")
FIRST_NAMES = ("ana", "ben", "chloe", "dev", "emma", "farid", "grace", "hugo", "ines", "jon")
LAST_NAMES = ("smith", "garcia", "müller", "dubois", "rossi", "kowalski", "tanaka", "silva")


@dataclass(frozen=True)
class Delay:
    """Days from a lead's creation to one kind of outcome: `offset` + Gamma(`shape`, `scale`)."""

    offset: float
    shape: float
    scale: float

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.offset + rng.gamma(self.shape, self.scale, size=n)

    def arrived_by(self, days: np.ndarray) -> np.ndarray:
        """The probability that the outcome has arrived by each age in `days`."""
        return gamma.cdf(np.asarray(days, float) - self.offset, self.shape, scale=self.scale)


WIN_DELAY = Delay(15.0, 2.0, 20.0)
LOSS_DELAY = Delay(10.0, 2.0, 25.0)
DISQUALIFICATION_DELAY = Delay(0.0, 1.5, 4.0)


@dataclass(frozen=True)
class DemoFunnel:
    """Leads (demo schema fields), their outcome events, and each lead's true probability."""

    leads: pd.DataFrame
    outcomes: pd.DataFrame  # closing outcomes: won, lost, disqualified
    true_probability: pd.Series  # indexed by lead_id
    lifecycle: pd.DataFrame  # hand-overs to sales and first contacts, for the follow-up SLA


def _pick(rng: np.random.Generator, table: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw categories with the table's shares; return them and their log-odds effects."""
    keys = list(table)
    shares = np.array([table[k][0] for k in keys])
    index = rng.choice(len(keys), size=n, p=shares / shares.sum())
    values = np.array(keys, dtype=object)[index]
    effects = np.array([table[k][1] for k in keys])[index]
    return values, effects


def _naive(moment: datetime) -> np.datetime64:
    """UTC time as numpy's naive datetime64 (numpy has no time zones)."""
    return np.datetime64(moment.replace(tzinfo=None), "s")


def _draw_given(
    rng: np.random.Generator, given: np.ndarray, shares: dict, values: list[str]
) -> np.ndarray:
    """Draw one of `values` per row with the shares listed for that row's `given` value."""
    drawn = np.empty(len(given), dtype=object)
    for key, p in shares.items():
        rows = given == key
        drawn[rows] = np.array(values, dtype=object)[rng.choice(len(values), rows.sum(), p=p)]
    return drawn


def _arrival_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Lead creation times: growing volume, fewer leads at weekends, office hours."""
    days = np.arange((END - START).days)
    weekday = np.array([(START + timedelta(days=int(d))).weekday() for d in days])
    weight = (1.0 + 0.6 * days / days[-1]) * np.where(weekday >= 5, 0.3, 1.0)
    day = np.sort(rng.choice(days, size=n, p=weight / weight.sum()))
    seconds = rng.normal(14 * 3600, 3 * 3600, size=n).clip(0, 86_399)
    return _naive(START) + (day * 86_400 + seconds).astype("timedelta64[s]")


def _company_size_effect(size: np.ndarray) -> np.ndarray:
    """Mid-market companies (a few hundred to a few thousand people) convert best."""
    with np.errstate(invalid="ignore", divide="ignore"):
        bump = 1.5 * np.exp(-((np.log10(size) - 2.8) ** 2) / (2 * 0.5**2)) - 0.5
    return np.where(np.isnan(size), -0.6, bump)


def _interactions(
    industry: np.ndarray,
    size: np.ndarray,
    seniority: np.ndarray,
    lead_type: np.ndarray,
    demo_requested: np.ndarray,
    page_views: np.ndarray,
    form_fills: np.ndarray,
) -> np.ndarray:
    """Real funnels are not additive: who buys depends on combinations of fields."""
    with np.errstate(invalid="ignore"):
        big, enterprise, tiny = size >= 200, size >= 2_000, size < 20
    return (
        1.0 * (np.isin(industry, ["software", "financial_services"]) & big)
        - 1.2 * (np.isin(industry, ["government", "education"]) & enterprise)
        - 1.2 * ((seniority == "c_level") & tiny)  # founders of tiny shops: no budget
        + 0.8 * (np.isin(seniority, ["vp", "director"]) & big)
        + 1.0 * ((page_views >= 8) & (form_fills >= 2))  # pricing pages, then a contact form
        + 0.8 * (demo_requested & (lead_type == "SQL"))
    )


def generate_demo_funnel(
    n_leads: int = DEFAULT_LEADS, seed: int = 0, collapse: bool = True
) -> DemoFunnel:
    """Generate the demo funnel; the same arguments always give the same funnel. Without
    `collapse`, every source is stable (the same leads, only `COLLAPSING_SOURCE`'s wins
    after `COLLAPSE_AT` differ)."""
    if n_leads < 1:
        raise ValueError("n_leads must be positive")
    # One random stream, drawn step by step in this order: reordering the steps, or the draws
    # inside one, changes every funnel (and the benchmarks and figures measured on them).
    rng = np.random.default_rng(seed)
    created = _arrival_times(rng, n_leads)
    profile = _profiles(rng, n_leads)
    engagement = _engagement(rng, profile)
    p_true = expit(_true_logit(created, profile, engagement, collapse))
    closings = _closings(rng, created, profile, p_true)
    lead_ids = np.array([f"demo-{i:06d}" for i in range(n_leads)], dtype=object)
    contacts = _contact_details(rng, n_leads)
    sales_rating = _sales_rating(rng, closings)
    leads = _leads_frame(lead_ids, created, profile, engagement, contacts, sales_rating)
    outcomes = _outcomes_frame(rng, lead_ids, closings, profile.size)
    closed_at = np.where(closings.closed, closings.occurred, np.datetime64("NaT"))
    return DemoFunnel(
        leads=leads,
        outcomes=outcomes,
        true_probability=pd.Series(p_true, index=lead_ids, name="true_probability"),
        lifecycle=_lifecycle(
            seed, lead_ids, profile.source, profile.lead_type, p_true, created, closed_at
        ),
    )


@dataclass(frozen=True)
class _Profile:
    """Who the leads are, with each field's effect on the log-odds of winning."""

    source: np.ndarray
    source_effect: np.ndarray
    lead_type: np.ndarray
    lead_type_effect: np.ndarray
    industry: np.ndarray
    industry_effect: np.ndarray
    country: np.ndarray
    country_effect: np.ndarray
    seniority: np.ndarray
    seniority_effect: np.ndarray
    size: np.ndarray  # employees; NaN where the lead left it empty


def _profiles(rng: np.random.Generator, n: int) -> _Profile:
    """Draw who the leads are: the channel decides the lead type, firmographics are independent."""
    source, source_effect = _pick(rng, SOURCES, n)
    lead_type = _draw_given(rng, source, LEAD_TYPES_BY_SOURCE, list(LEAD_TYPES))
    lead_type_effect = np.array([LEAD_TYPES[t] for t in lead_type])
    industry, industry_effect = _pick(rng, INDUSTRIES, n)
    country, country_effect = _pick(rng, COUNTRIES, n)
    seniority, seniority_effect = _pick(rng, SENIORITIES, n)
    return _Profile(
        source=source,
        source_effect=source_effect,
        lead_type=lead_type,
        lead_type_effect=lead_type_effect,
        industry=industry,
        industry_effect=industry_effect,
        country=country,
        country_effect=country_effect,
        seniority=seniority,
        seniority_effect=seniority_effect,
        size=_company_sizes(rng, source),
    )


def _company_sizes(rng: np.random.Generator, source: np.ndarray) -> np.ndarray:
    """Log-normal head counts, missing more often where a short ad or download form asks less."""
    n = len(source)
    size = np.round(np.exp(rng.normal(4.0, 1.7, size=n))).clip(1, 250_000)
    size_missing_rate = np.where(np.isin(source, ["content_download", "paid_search"]), 0.28, 0.1)
    return np.where(rng.random(n) < size_missing_rate, np.nan, size)


@dataclass(frozen=True)
class _Engagement:
    """What the leads did before they were scored."""

    page_views: np.ndarray
    email_opens: np.ndarray
    form_fills: np.ndarray
    demo_requested: np.ndarray
    days_since_first_touch: np.ndarray


def _engagement(rng: np.random.Generator, profile: _Profile) -> _Engagement:
    """Draw engagement from a hidden intent, so the model sees intent only through it."""
    n = len(profile.source)
    intent = rng.normal(size=n)
    page_views = rng.negative_binomial(2, 2 / (2 + np.exp(1.6 + 0.55 * intent)))
    email_opens = rng.poisson(np.exp(1.1 + 0.35 * intent))
    arrived_by_form = np.isin(profile.source, ["content_download", "webinar"]).astype(int)
    form_fills = rng.poisson(np.exp(-0.6 + 0.5 * intent)) + arrived_by_form
    is_sql = profile.lead_type == "SQL"
    demo_requested = rng.random(n) < expit(-2.3 + 0.9 * intent + 1.0 * is_sql)
    nurture_days = {"outbound": 6, "organic": 45, "content_download": 60, "paid_search": 20}
    touch_scale = np.array([nurture_days.get(s, 30) for s in profile.source])
    return _Engagement(
        page_views=page_views,
        email_opens=email_opens,
        form_fills=form_fills,
        demo_requested=demo_requested,
        days_since_first_touch=np.round(rng.gamma(1.5, touch_scale / 1.5)),
    )


def _true_logit(
    created: np.ndarray, profile: _Profile, engagement: _Engagement, collapse: bool
) -> np.ndarray:
    """The true log-odds of winning: only fields the model may see, plus the source's collapse."""
    size, seniority = profile.size, profile.seniority
    page_views, form_fills = engagement.page_views, engagement.form_fills
    demo_requested = engagement.demo_requested
    is_decision_maker = np.isin(seniority, DECISION_MAKERS)
    collapsed = collapse & (profile.source == COLLAPSING_SOURCE) & (created >= _naive(COLLAPSE_AT))
    return (
        INTERCEPT
        + profile.source_effect
        + profile.lead_type_effect
        + profile.industry_effect
        + profile.country_effect
        + profile.seniority_effect
        + _company_size_effect(size)
        + 0.45 * np.log1p(page_views)
        + 0.2 * np.log1p(engagement.email_opens)
        + 0.3 * np.minimum(form_fills, 3)
        + demo_requested * (0.8 + 0.5 * is_decision_maker)
        + 0.25 * np.exp(-((np.log1p(engagement.days_since_first_touch) - 3.0) ** 2) / 2)
        + _interactions(
            profile.industry,
            size,
            seniority,
            profile.lead_type,
            demo_requested,
            page_views,
            form_fills,
        )
        + COLLAPSE_LOGIT * collapsed
    )


@dataclass(frozen=True)
class _Closings:
    """How each lead ends and when; `closed` is False where that is after the demo's now."""

    won: np.ndarray
    outcome: np.ndarray
    occurred: np.ndarray
    closed: np.ndarray


def _closings(
    rng: np.random.Generator, created: np.ndarray, profile: _Profile, p_true: np.ndarray
) -> _Closings:
    """Draw the outcomes from the true probability; poor fits among the losers are disqualified."""
    n = len(created)
    size, industry = profile.size, profile.industry
    won = rng.random(n) < p_true
    poor_fit = (
        1.4 * (size < 10)
        + 1.2 * np.isnan(size)
        + 0.8 * np.isin(profile.country, ["IN", "BR", "other"])
        + 0.9 * (industry == "education")
        + 0.5 * (profile.seniority == "individual_contributor")
    )
    disqualified = ~won & (rng.random(n) < expit(-1.7 + poor_fit))
    outcome = np.where(won, "won", np.where(disqualified, "disqualified", "lost"))
    delay_days = np.where(
        won,
        WIN_DELAY.draw(rng, n),
        np.where(disqualified, DISQUALIFICATION_DELAY.draw(rng, n), LOSS_DELAY.draw(rng, n)),
    )
    occurred = created + (delay_days * 86_400).astype("timedelta64[s]")
    return _Closings(won=won, outcome=outcome, occurred=occurred, closed=occurred < _naive(END))


@dataclass(frozen=True)
class _ContactDetails:
    """Each lead's email and full name, in lead order."""

    emails: list[str]
    full_names: list[str]


def _contact_details(rng: np.random.Generator, n: int) -> _ContactDetails:
    """Draw names and emails: PII the store must hash and the model must never see."""
    first = rng.choice(FIRST_NAMES, size=n)
    last = rng.choice(LAST_NAMES, size=n)
    domain = rng.choice(["acme", "globex", "initech", "umbrella", "hooli", "vandelay"], size=n)
    return _ContactDetails(
        emails=[
            f"{a}.{b}{i}@{d}.example"
            for i, (a, b, d) in enumerate(zip(first, last, domain, strict=True))
        ],
        full_names=[f"{a.title()} {b.title()}" for a, b in zip(first, last, strict=True)],
    )


def _sales_rating(rng: np.random.Generator, closings: _Closings) -> np.ndarray:
    """Draw the rating sales fills in after the first call: it gives the outcome away (a leak)."""
    rating_by_outcome = {
        "won": (0.70, 0.25, 0.05),
        "lost": (0.20, 0.45, 0.35),
        "disqualified": (0.05, 0.15, 0.80),
    }
    sales_rating = _draw_given(rng, closings.outcome, rating_by_outcome, ["hot", "warm", "cold"])
    sales_rating[~closings.closed] = None  # not called yet
    return sales_rating


def _leads_frame(
    lead_ids: np.ndarray,
    created: np.ndarray,
    profile: _Profile,
    engagement: _Engagement,
    contacts: _ContactDetails,
    sales_rating: np.ndarray,
) -> pd.DataFrame:
    """Assemble the leads under the demo schema's field names."""
    return pd.DataFrame(
        {
            "lead_id": lead_ids,
            "email": contacts.emails,
            "full_name": contacts.full_names,
            "created_at": pd.to_datetime(created).tz_localize(UTC),
            "source": profile.source,
            "lead_type": profile.lead_type,
            "industry": profile.industry,
            "company_size": profile.size,
            "country": profile.country,
            "seniority": profile.seniority,
            "page_views": engagement.page_views.astype(float),
            "email_opens": engagement.email_opens.astype(float),
            "form_fills": engagement.form_fills.astype(float),
            "demo_requested": engagement.demo_requested,
            "days_since_first_touch": engagement.days_since_first_touch,
            "sales_rating": sales_rating,
        }
    )


def _outcomes_frame(
    rng: np.random.Generator, lead_ids: np.ndarray, closings: _Closings, size: np.ndarray
) -> pd.DataFrame:
    """Assemble the closing events seen by the demo's now: deal amounts grow with the company."""
    n = len(lead_ids)
    outcome = closings.outcome
    size_for_amount = np.nan_to_num(size, nan=50.0)
    amount = np.round(np.exp(rng.normal(np.log(6_000) + 0.3 * np.log10(size_for_amount), 0.5)), 2)
    reason = np.where(
        outcome == "lost",
        rng.choice(LOST_REASONS, size=n),
        np.where(outcome == "disqualified", rng.choice(DISQUALIFIED_REASONS, size=n), None),
    )
    return pd.DataFrame(
        {
            "event_id": [f"{i}-closed" for i in lead_ids],
            "lead_id": lead_ids,
            "outcome": outcome,
            "occurred_at": pd.to_datetime(closings.occurred).tz_localize(UTC),
            "amount": np.where(closings.won, amount, np.nan),
            "reason": reason,
        }
    )[closings.closed].reset_index(drop=True)


#: Median hours from hand-over to first contact, per source (others: 10 hours).
RESPONSE_HOURS = {
    "outbound": 3.0,
    "referral": 5.0,
    "partner": 6.0,
    "paid_search": 14.0,
    "content_download": 20.0,
}


def _lifecycle(
    seed: int,
    lead_ids: np.ndarray,
    source: np.ndarray,
    lead_type: np.ndarray,
    p_true: np.ndarray,
    created: np.ndarray,
    closed_at: np.ndarray,
) -> pd.DataFrame:
    """Hand-overs and first contacts. Sales calls the likeliest leads first, so faster contact
    goes with more wins without changing any lead's probability. A lead closed before sales got
    to it was never contacted.

    Drawn from a random stream of its own, so the leads and outcomes are the same as without it.
    """
    rng = np.random.default_rng([seed, 1])
    n = len(lead_ids)
    handed = rng.random(n) < np.where(lead_type == "MQL", 0.8, 0.95)
    handed_at = created + (rng.exponential(4.0, n) * 3600).astype("timedelta64[s]")
    handed &= np.isnat(closed_at) | (handed_at < closed_at)  # no hand-over of a closed lead
    rank = pd.Series(p_true).rank(pct=True).to_numpy()
    median = np.array([RESPONSE_HOURS.get(s, 5.0) for s in source])
    hours = np.exp(rng.normal(np.log(median) - 1.2 * (rank - 0.5), 1.0))
    contacted_at = handed_at + (hours * 3600).astype("timedelta64[s]")
    end = _naive(END)
    still_open = np.isnat(closed_at)
    before_close = still_open | (contacted_at < np.where(still_open, end, closed_at))
    contacted = handed & (rng.random(n) < 0.97) & before_close & (contacted_at < end)
    handed &= handed_at < end
    events = [
        pd.DataFrame(
            {
                "event_id": [f"{i}-{kind}" for i in lead_ids[mask]],
                "lead_id": lead_ids[mask],
                "outcome": kind,
                "occurred_at": pd.to_datetime(times[mask]).tz_localize(UTC),
                "amount": np.nan,
                "reason": None,
            }
        )
        for kind, mask, times in (
            ("handed_over", handed, handed_at),
            ("contacted", contacted, contacted_at),
        )
    ]
    return pd.concat(events, ignore_index=True)


def load_demo_funnel(
    session: Session,
    funnel: DemoFunnel,
    schema: LeadSchema,
    pii_key: bytes,
    received_at: datetime,
) -> IngestCounts:
    """Write the funnel's leads and outcome events to the store (PII hashed like any lead)."""
    leads = [lead_row(schema, lead, pii_key, received_at) for lead in _records(funnel.leads)]
    upsert_leads(session, leads)
    events = pd.concat([funnel.outcomes, funnel.lifecycle], ignore_index=True)
    outcomes = [
        event | {"received_at": received_at, "amount": json_value(event["amount"])}
        for event in _records(events)
    ]
    return add_outcomes(session, outcomes)


class StoreNotEmptyError(ValueError):
    """The demo funnel goes only into an empty store (it would mix with real leads)."""

    def __init__(self, existing: int) -> None:
        super().__init__(f"the store already holds {existing:,} leads")
        self.existing = existing


@dataclass(frozen=True)
class DemoSeeding:
    """What `seed_demo_funnel` stored."""

    funnel: DemoFunnel
    counts: IngestCounts

    def summary(self) -> str:
        leads, closed = len(self.funnel.leads), len(self.funnel.outcomes)
        won = int((self.funnel.outcomes["outcome"] == Outcome.WON).sum())
        return (
            f"Demo funnel stored: {leads:,} leads from {START:%Y-%m-%d} to {END:%Y-%m-%d}, "
            f"{closed:,} closed ({won / closed:.1%} won), {leads - closed:,} still open; "
            f"{self.counts.accepted:,} events in all."
        )


def seed_demo_funnel(
    sessions: sessionmaker[Session],
    schema: LeadSchema,
    pii_key: bytes,
    received_at: datetime,
    n_leads: int = DEFAULT_LEADS,
    seed: int = 0,
) -> DemoSeeding:
    """Generate the demo funnel and store it, in one transaction, into an empty store."""
    with sessions() as session:
        existing = count_leads(session)
    if existing:
        raise StoreNotEmptyError(existing)
    funnel = generate_demo_funnel(n_leads, seed)
    with sessions.begin() as session:
        counts = load_demo_funnel(session, funnel, schema, pii_key, received_at)
    return DemoSeeding(funnel, counts)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts of plain Python values (timestamps as aware datetimes)."""
    converted = frame.astype(object).where(frame.notna(), None)
    for column in frame.select_dtypes(include=["datetimetz"]):
        converted[column] = [t.to_pydatetime() for t in frame[column]]
    return converted.to_dict(orient="records")
