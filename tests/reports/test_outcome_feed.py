"""A feed of outcomes that went quiet is told from one that is only slow or batched."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.outcome_feed import ALL_SOURCES, stalled_feeds

START = pd.Timestamp("2026-06-01", tz="UTC")


def feed(per_day: dict[str, float], days: int, seed: int = 0) -> pd.DataFrame:
    """Outcomes arriving as Poisson processes, one per source, over `days` days."""
    rng = np.random.default_rng(seed)
    rows = []
    for source, rate in per_day.items():
        count = rng.poisson(rate * days)
        offsets = np.sort(rng.uniform(0, days, count))
        rows += [(START + pd.Timedelta(days=float(d)), source) for d in offsets]
    return pd.DataFrame(rows, columns=["occurred_at", "source"])


def leads_open_in(*sources: str) -> pd.DataFrame:
    return pd.DataFrame({"source": list(sources), "outcome": [None] * len(sources)})


def test_a_steady_feed_is_not_stalled_at_its_last_outcome_nor_a_day_later() -> None:
    events = feed({"webinar": 5, "referral": 2}, 120)
    last = events["occurred_at"].max()
    for until in (last, last + pd.Timedelta(days=1)):
        assert stalled_feeds(events, leads_open_in("webinar", "referral"), until) == []


def test_a_long_silence_of_every_source_is_a_stall_named_with_its_start() -> None:
    events = feed({"webinar": 5, "referral": 2}, 120)
    last = events["occurred_at"].max()
    stalls = stalled_feeds(
        events, leads_open_in("webinar", "referral"), last + pd.Timedelta(days=30)
    )
    assert [s.subject for s in stalls] == [ALL_SOURCES]  # one alert, not one per source
    overall = stalls[0]
    assert overall.last_outcome == last and overall.silent_days == 30
    assert overall.usual_days < 3


def test_one_source_gone_quiet_while_the_others_go_on() -> None:
    events = feed({"webinar": 5, "referral": 2}, 120)
    quiet_since = START + pd.Timedelta(days=80)
    events = events[(events["source"] != "referral") | (events["occurred_at"] < quiet_since)]
    until = events["occurred_at"].max()
    stalls = stalled_feeds(events, leads_open_in("webinar", "referral"), until)
    assert [s.subject for s in stalls] == ["referral"]
    # Without open leads, a source's silence is expected: nothing is owed.
    assert stalled_feeds(events, leads_open_in("webinar"), until) == []


def test_a_weekly_batch_is_not_stalled_after_six_days() -> None:
    """CRMs post in batches: the longest gap the window held is usual too."""
    weekly = [START + pd.Timedelta(weeks=w) for w in range(15) for _ in range(30)]
    events = pd.DataFrame({"occurred_at": weekly, "source": "webinar"})
    last = events["occurred_at"].max()
    assert stalled_feeds(events, leads_open_in("webinar"), last + pd.Timedelta(days=6)) == []
    assert stalled_feeds(events, leads_open_in("webinar"), last + pd.Timedelta(days=15))


def test_a_feed_too_thin_to_judge_is_not_judged() -> None:
    events = feed({"webinar": 0.05}, 120)
    assert len(events) < 10
    last = events["occurred_at"].max()
    assert stalled_feeds(events, leads_open_in("webinar"), last + pd.Timedelta(days=300)) == []


def test_a_source_that_went_quiet_first_is_named_beside_every_source() -> None:
    events = feed({"webinar": 5, "referral": 2}, 120)
    referral_quiet = (events["source"] == "referral") & (
        events["occurred_at"] >= START + pd.Timedelta(days=80)
    )
    events = events[~referral_quiet]
    last = events["occurred_at"].max()
    stalls = stalled_feeds(
        events, leads_open_in("webinar", "referral"), last + pd.Timedelta(days=30)
    )
    assert [s.subject for s in stalls] == [ALL_SOURCES, "referral"]
