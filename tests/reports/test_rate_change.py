"""The change detection on partial outcomes: a drop named weeks after it starts, from leads too
young to have closed, with its date; nothing named on a stable rate, a rise, or a mix the model
explains; losses weigh as evidence; delays measured without the drop hiding itself."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import gamma

from reports.data import ReportData
from reports.documents import source_quality_report, with_feed_health
from reports.outcome_timing import EVENT, NEITHER, OTHER, event_delays, lead_states, outcome_timing
from reports.rate_change import ALPHA, RateChange
from reports.source_signals import LEADING_INDICATORS, WIN_RATE, source_changes
from serving.settings import Settings
from store.outcomes import Outcome

START = pd.Timestamp("2025-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)


Rate = Callable[[np.ndarray], np.ndarray]


def funnel(
    rate: Rate | float,
    days: int = 400,
    per_day: int = 10,
    seed: int = 0,
    as_of_day: int | None = None,
    never_close: float = 0.0,
    source: str = "ads",
    win_delay: tuple[float, float, float] = (15, 2, 20),
    other_delay: tuple[float, float, float] = (10, 2, 25),
) -> tuple[pd.DataFrame, pd.Timestamp]:
    """One source's leads, `per_day` a day for `days` days, winning with `rate` (a number, or
    one per day of creation): wins arrive `win_delay` = (offset, shape, scale): offset +
    Gamma(shape, scale) days after creation, other ends `other_delay` days after (or never, for
    a share `never_close`); as known on `as_of_day`."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    created = START + pd.to_timedelta(day + rng.random(n), "D")
    won = rng.random(n) < (rate(day) if callable(rate) else rate)
    delay = np.where(
        won,
        win_delay[0] + rng.gamma(*win_delay[1:], n),
        other_delay[0] + rng.gamma(*other_delay[1:], n),
    )
    closes = won | (rng.random(n) >= never_close)
    closed_at = pd.Series(created + pd.to_timedelta(delay, "D")).where(closes)
    as_of = START + (as_of_day if as_of_day is not None else days) * DAY
    known = closed_at <= as_of
    leads = pd.DataFrame(
        {
            "created_at": created,
            "source": source,
            "outcome": np.where(known, np.where(won, Outcome.WON, Outcome.LOST), None),
            "closed_at": closed_at.where(known),
            "probability": np.nan,
        }
    )
    return leads, as_of


def step(before: float, after: float, change_day: int) -> Rate:
    return lambda day: np.where(day < change_day, before, after)


def the_change(leads: pd.DataFrame, as_of: pd.Timestamp, source: str = "ads") -> RateChange:
    return next(c for c in source_changes(leads, as_of, WIN_RATE) if c.source == source)


def test_a_drop_is_named_weeks_later_from_leads_too_young_to_have_closed() -> None:
    # 15% -> 3% from day 300; the report 60 days later: a lead since has had 60 days at most,
    # when three quarters of wins take 70.
    leads, as_of = funnel(step(0.15, 0.03, 300), days=360)
    change = the_change(leads, as_of)
    assert change.named and change.direction == "drop"
    assert abs(pd.Timestamp(change.since) - (START + 300 * DAY).tz_localize(None)) <= 10 * DAY
    low, high = map(pd.Timestamp, change.since_interval)
    assert low <= pd.Timestamp(change.since) <= high
    assert change.events_after < change.expected_after / 2
    assert change.rate_before == pytest.approx(0.15, abs=0.03)
    assert change.rate_after < 0.08


@pytest.mark.parametrize("seed", range(3))
def test_the_same_drop_is_not_named_before_the_evidence_is_there(seed: int) -> None:
    leads, as_of = funnel(step(0.15, 0.03, 300), as_of_day=310, days=310, seed=seed)
    assert not the_change(leads, as_of).named


def test_a_stable_rate_is_named_at_most_as_often_as_the_threshold_allows() -> None:
    named = sum(
        the_change(*funnel(0.15, days=300, per_day=8, seed=seed)).named for seed in range(40)
    )
    # At most ALPHA per report: 40 reports name none but by a chance of at most 40 x ALPHA.
    assert named == 0


def test_a_rise_is_not_a_drop() -> None:
    change = the_change(*funnel(step(0.05, 0.25, 250), days=400))
    assert not change.named and change.evidence < 1.0


def test_losses_weigh_as_evidence() -> None:
    leads, as_of = funnel(step(0.15, 0.03, 300), as_of_day=340, days=340)
    without_losses = leads.assign(
        outcome=leads["outcome"].where(leads["outcome"] != Outcome.LOST),
        closed_at=leads["closed_at"].where(leads["outcome"] != Outcome.LOST),
    )
    # A loss is only a little likelier after the drop (97% of leads lose instead of 85%): a
    # little more evidence, each time.
    with_losses = the_change(leads, as_of)
    assert with_losses.evidence > the_change(without_losses, as_of).evidence + 0.3


def test_a_worse_mix_the_model_sees_is_not_a_collapse_of_the_source() -> None:
    # From day 250 the source brings leads the model scores at 3% instead of 15%, and they
    # win at 3%: the source's own rate fell, but no more than the model expects.
    probability = step(0.15, 0.03, 250)
    leads, as_of = funnel(probability)
    assert the_change(leads, as_of).named  # the source's own rate
    day = ((leads["created_at"] - START) // DAY).to_numpy()
    judged = the_change(leads.assign(probability=probability(day)), as_of)
    assert not judged.named  # relative to the champion


def test_leads_that_never_close_are_not_a_drop() -> None:
    leads, as_of = funnel(0.15, never_close=0.5, seed=3)
    change = the_change(leads, as_of)
    assert not change.named


def test_too_few_leads_give_no_verdict() -> None:
    leads, as_of = funnel(0.2, days=3, per_day=10)
    assert source_changes(leads, as_of, WIN_RATE) == []


def test_delays_are_measured_without_the_drop_hiding_itself() -> None:
    # A source whose rate fell recently has few young winners; the delays of its wins, read
    # alone, are still the true ones (the cumulative incidence, diluted by the young leads that
    # will not win, would make wins look slower and the missing ones expected later).
    leads, as_of = funnel(step(0.15, 0.03, 300), days=360)
    closed = leads["closed_at"]
    won, lost = (closed.where(leads["outcome"] == kind) for kind in (Outcome.WON, Outcome.LOST))
    state, days = lead_states(leads["created_at"], won, lost, as_of)
    ages = ((as_of - leads["created_at"]) / DAY).to_numpy()
    delays = event_delays(state, days, ages)
    for age in (30, 45, 60, 90):
        assert delays[age] == pytest.approx(gamma.cdf(age - 15, 2, scale=20), abs=0.04)
    timing = outcome_timing(state, days)
    assert timing.rate == pytest.approx(0.135, abs=0.03)  # all leads, before and after


def test_lead_states_and_ages() -> None:
    created = pd.Series(pd.to_datetime(["2025-01-01", "2025-01-01", "2025-01-01"], utc=True))
    won = pd.Series(pd.to_datetime(["2025-01-11", None, None], utc=True))
    lost = pd.Series(pd.to_datetime([None, "2025-01-04", None], utc=True))
    state, days = lead_states(created, won, lost, pd.Timestamp("2025-01-31", tz="UTC"))
    assert list(state) == [EVENT, OTHER, NEITHER]
    assert list(days) == [10, 3, 30]


def test_the_leading_indicators_are_judged_on_their_own_events() -> None:
    leads, as_of = funnel(0.15, days=300)
    rng = np.random.default_rng(4)
    created = leads["created_at"]
    handed = rng.random(len(leads)) < np.where(created < START + 260 * DAY, 0.9, 0.4)
    leads = leads.assign(
        handed_over=created.where(handed) + pd.to_timedelta(rng.exponential(0.2, len(leads)), "D"),
        contacted=pd.NaT,
    )
    leads["handed_over"] = leads["handed_over"].where(leads["handed_over"] <= as_of)
    signal = next(s for s in LEADING_INDICATORS if s.event == Outcome.HANDED_OVER)
    (change,) = source_changes(leads, as_of, signal)
    assert change.named and change.signal == Outcome.HANDED_OVER
    assert abs(pd.Timestamp(change.since) - (START + 260 * DAY).tz_localize(None)) <= 3 * DAY
    assert not the_change(leads, as_of).named  # the win rate did not move


@pytest.mark.parametrize("seed", range(3))
def test_a_source_whose_leads_end_faster_is_judged_on_its_own_delays(seed: int) -> None:
    # B's losses and disqualifications come within days, A's within weeks: judged on every
    # source's delays, B's early losses would look like a drop.
    big, as_of = funnel(0.15, days=300, per_day=20, seed=seed, source="A")
    fast, _ = funnel(0.15, days=300, per_day=3, seed=100 + seed, source="B", other_delay=(0, 1, 3))
    assert not the_change(pd.concat([big, fast], ignore_index=True), as_of, "B").named


@pytest.mark.parametrize("seed", range(3))
def test_a_small_source_with_slow_wins_is_not_short_of_wins(seed: int) -> None:
    big, as_of = funnel(0.15, days=300, per_day=20, seed=seed, source="A")
    slow, _ = funnel(0.15, days=300, per_day=3, seed=100 + seed, source="B", win_delay=(40, 2, 40))
    assert not the_change(pd.concat([big, slow], ignore_index=True), as_of, "B").named


def test_outcomes_dated_before_their_leads_do_not_distort_the_delays() -> None:
    # A bulk import: leads stamped with the day they were loaded, closed long before.
    live, as_of = funnel(0.15, days=300, seed=1, source="live")
    loaded = funnel(0.15, days=300, seed=2, source="imported")[0].assign(created_at=as_of - 2 * DAY)
    alone = the_change(live, as_of, "live")
    together = the_change(pd.concat([live, loaded], ignore_index=True), as_of, "live")
    assert not together.named and together.evidence == pytest.approx(alone.evidence, abs=1.0)


def test_a_lead_the_champion_did_not_score_keeps_the_judgement_relative_to_it() -> None:
    probability = step(0.15, 0.03, 250)
    leads, as_of = funnel(probability)
    day = ((leads["created_at"] - START) // DAY).to_numpy()
    scored = probability(day).astype(float)
    scored[0] = np.nan
    assert not the_change(leads.assign(probability=scored), as_of).named


def test_the_rate_since_a_young_drop_is_never_a_certain_zero() -> None:
    leads, as_of = funnel(step(0.15, 0.03, 300), days=340)
    change = the_change(leads, as_of)
    assert change.events_after == 0 or change.rate_after > 0
    assert 0.003 < change.rate_after < 0.08


def report_data(
    leads: pd.DataFrame, as_of: pd.Timestamp, handed_over: pd.Series | None = None
) -> ReportData:
    """The report's data for `leads` (hand-overs at `handed_over`, else none)."""
    never = pd.Series(pd.NaT, index=leads.index, dtype="datetime64[ns, UTC]")
    leads = leads.assign(
        lead_id=[f"l{i}" for i in range(len(leads))],
        handed_over=never if handed_over is None else handed_over,
        contacted=never,
    )
    closed = leads[leads["outcome"].notna()]
    feed = pd.DataFrame({"occurred_at": closed["closed_at"], "source": closed["source"]})
    return ReportData(
        leads=leads,
        features=pd.DataFrame(index=leads.index),
        champion=None,
        as_of=as_of,
        feed=feed,
        activity_until=as_of,
    )


def test_the_alert_says_what_arrived_against_what_was_expected() -> None:
    leads, as_of = funnel(step(0.15, 0.03, 300), days=380)
    data = report_data(leads, as_of)
    _, (alert,) = source_quality_report(data, pd.Timedelta(days=70).to_pytimedelta())
    change = the_change(leads, as_of)
    assert alert.kind == "source_stopped_converting" and alert.subject == "ads"
    assert (
        f"{change.events_after:,} won and {change.ended_otherwise_after:,} lost" in alert.evidence
    )
    assert f"where {change.expected_after:.1f} wins were expected" in alert.evidence
    assert "in fewer than 1 report in a million" in alert.evidence
    assert change.evidence > math.log(1e6) and change.since in alert.evidence


def test_hand_overs_that_stop_arriving_are_not_a_drop_of_every_source() -> None:
    # The CRM stopped posting hand-overs three weeks ago; outcomes go on.
    parts = [funnel(0.15, days=300, seed=seed, source=name) for seed, name in enumerate("ABC")]
    leads, as_of = pd.concat([p[0] for p in parts], ignore_index=True), parts[0][1]
    handed = leads["created_at"] + pd.Timedelta(hours=3)
    data = report_data(leads, as_of, handed.where(handed < as_of - 21 * DAY))
    found = source_quality_report(data, pd.Timedelta(days=70).to_pytimedelta())
    fell = [c for c in found[0]["leading_indicators"] if c["signal"] == Outcome.HANDED_OVER]
    assert {c["source"] for c in fell if c["named"]} == {"A", "B", "C"}  # seen alone: a drop
    report, _ = with_feed_health(found, data)
    judged = [c for c in report["leading_indicators"] if c["signal"] == Outcome.HANDED_OVER]
    assert not any(c["named"] for c in judged)
    assert {c["withheld"] for c in judged} == {"these events stopped arriving"}


def test_the_false_alarm_rate_is_a_setting_the_detection_obeys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leads, as_of = funnel(step(0.15, 0.03, 300), days=360)
    change = the_change(leads, as_of)
    assert change.named and change.threshold == pytest.approx(math.log(1 / ALPHA))
    stricter = math.exp(-(change.evidence + 1))  # rarer than this drop by chance
    (strict,) = source_changes(leads, as_of, WIN_RATE, stricter)
    assert not strict.named and strict.evidence == pytest.approx(change.evidence)
    monkeypatch.setenv("LEADLOOP_CHANGE_FALSE_ALARM_RATE", "0.01")
    assert Settings(_env_file=None).report_config().false_alarm_rate == 0.01
    for meaningless in ("0", "0.7", "often"):
        monkeypatch.setenv("LEADLOOP_CHANGE_FALSE_ALARM_RATE", meaningless)
        with pytest.raises(ValidationError, match="change_false_alarm_rate"):
            Settings(_env_file=None)


def test_one_source_whose_hand_overs_stop_is_named_not_withheld() -> None:
    parts = [funnel(0.15, days=300, seed=seed, source=name) for seed, name in enumerate("ABC")]
    leads, as_of = pd.concat([p[0] for p in parts], ignore_index=True), parts[0][1]
    handed = leads["created_at"] + pd.Timedelta(hours=3)
    stops = (leads["source"] == "A") & (leads["created_at"] >= START + 270 * DAY)
    data = report_data(leads, as_of, handed.mask(stops))
    report, _ = with_feed_health(
        source_quality_report(data, pd.Timedelta(days=70).to_pytimedelta()), data
    )
    (fell,) = [
        c for c in report["leading_indicators"] if c["signal"] == Outcome.HANDED_OVER and c["named"]
    ]
    assert fell["source"] == "A" and "withheld" not in fell
    assert report["outcome_feed"]["lifecycle_stalled"] == []


def test_a_drop_stays_named_alike_in_its_alert_and_its_table_when_every_feed_is_quiet() -> None:
    leads, as_of = funnel(step(0.15, 0.03, 300), days=380)
    data = replace(report_data(leads, as_of), activity_until=as_of + 30 * DAY)
    report, alerts = with_feed_health(
        source_quality_report(data, pd.Timedelta(days=70).to_pytimedelta()), data
    )
    assert "all sources" in report["outcome_feed"]["stalled"]
    (change,) = [c for c in report["changes"] if c["source"] == "ads"]
    stopped = [a for a in alerts if a.kind == "source_stopped_converting"]
    assert change["named"] and [a.subject for a in stopped] == ["ads"]


@pytest.mark.parametrize("seed", range(3))
def test_same_day_events_of_leads_hours_old_are_not_a_drop(seed: int) -> None:
    # Hand-overs come within hours: a lead an hour old has not had its whole first day.
    rng = np.random.default_rng(seed)
    parts = [
        funnel(0.15, days=150, per_day=40, seed=10 * seed + i, source=str(i)) for i in range(4)
    ]
    leads, as_of = pd.concat([p[0] for p in parts], ignore_index=True), parts[0][1]
    handed = leads["created_at"] + pd.to_timedelta(rng.exponential(4.0, len(leads)), "h")
    handed = handed.where((rng.random(len(leads)) < 0.95) & (handed <= as_of))
    signal = next(s for s in LEADING_INDICATORS if s.event == Outcome.HANDED_OVER)
    found = source_changes(leads.assign(handed_over=handed), as_of, signal)
    assert len(found) == 4 and not any(c.named for c in found)
