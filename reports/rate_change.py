"""Whether a source's rate of some event (winning, being disqualified, handed over...) changed,
and since when, from every lead's state so far (pure).

Waiting for leads to close costs months: a win takes weeks to arrive. Instead each lead counts
from its first day by what it shows at the report's date: the event arrived, the lead ended
otherwise (for wins: lost or disqualified), or neither yet at its age. With `OutcomeTiming` (how
soon each arrives, measured on the store) and the lead's chance p of the event, those three have
probabilities p F_e(age), (1 - p) F_o(age) and the rest: a young lead with neither says little,
an old one or one that ended otherwise says "no event", the event says "event". For wins, lost
and disqualified outcomes thus count as evidence alongside the wins.

A lead's chance is its baseline (for wins the champion's calibrated probability; without one
the source's rate) with the source's log-odds shifted by an amount fitted on the source's
settled leads, those old enough for most of their events to have arrived: for wins the test is
of a change relative to the model's expectation, so a source whose mix of leads got worse in
ways the model sees is not called a collapse, and one that got worse in a way it cannot see is.
For a change at day tau multiplying the odds by r, each lead created since tau gives a
likelihood ratio; their product over the leads since tau, averaged over the odds ratios in
`ODDS_RATIOS` (a mixture: the size of the change is not known; odds rather than rates, as in
the risk-adjusted CUSUM, so that a lead the champion was sure of cannot weigh without bound) is
the evidence. Read from the newest lead back, that product is a martingale while nothing
changes, so by Ville's inequality its largest value over every tau reaches 1/`ALPHA` with
probability at most `ALPHA` at one report: the threshold ln(1/`ALPHA`) needs no simulation and
holds whatever the store's size. Reports repeated every few days look again at mostly the same
leads; the benchmark (`make bench-reports`) measures how often that names a stable source.

A change is named when its evidence reaches the threshold and the rate fitted since its day
moved the way tested. Its day is the tau of the largest evidence, found again with the old rate
fitted on the leads before it until it stays put (once a change is old, the settled leads
include some since it); its interval is the days whose evidence is within a factor of 10.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, logsumexp

from reports import DEFAULT_FALSE_ALARM_RATE
from reports.outcome_timing import EVENT, OTHER

#: The false-alarm rate of one report for one source and one signal without a change, by
#: default (`LEADLOOP_CHANGE_FALSE_ALARM_RATE`): 1 in 500 at one report; over reports repeated
#: every 5 days, `make bench-reports` measures how often that names a stable source.
ALPHA = DEFAULT_FALSE_ALARM_RATE
THRESHOLD = math.log(1 / ALPHA)
#: The changes weighed (the new odds of the event as a multiple of the old), equally likely a
#: priori: the smallest is by a quarter either way, smaller changes are not worth an alert.
ODDS_RATIOS = {
    "drop": (0.75, 0.6, 0.45, 0.3, 0.2, 0.1, 0.05),
    "rise": (1.33, 1.67, 2.0, 3.0, 5.0),
}
#: The largest shift of a source's log-odds from its baseline's.
MAX_SHIFT = 12.0
#: A lead is settled once this share of the events it could have has had time to arrive.
SETTLED = 0.9
#: At most this many fits of the old rate before the day of the change stays put.
ROUNDS = 4
#: Leads needed before a candidate day for the old rate to be known at all.
MIN_LEADS_BEFORE = 40
#: The interval of the day: the days whose evidence is within this many nats of the best.
INTERVAL_NATS = math.log(10)
_TINY = 1e-9

Direction = Literal["drop", "rise"]


@dataclass(frozen=True)
class RateChange:
    source: str
    signal: str  # which event's rate
    direction: Direction
    since: str  # the first day of the new rate (the day of the largest evidence)
    since_interval: tuple[str, str]
    #: ln of the largest likelihood ratio of a change against none, over every start day, with
    #: the old rate fitted on the settled leads (what names it).
    evidence: float
    threshold: float
    rate_before: float  # eventual rate, fitted on the leads before `since`
    #: And since, from the leads since (their states so far weighed by their age) as the
    #: mixture weighs each odds ratio.
    rate_after: float
    leads_before: int
    leads_after: int
    events_after: int  # events so far among the leads since `since`
    ended_otherwise_after: int  # and ends without it (for wins: lost or disqualified)
    expected_after: float  # events expected by now among them at the old rate

    @property
    def named(self) -> bool:
        """Enough evidence, and the rate moved the way tested."""
        moved = self.rate_after - self.rate_before
        return self.evidence >= self.threshold and (moved < 0) == (self.direction == "drop")

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {"named": self.named}


@dataclass(frozen=True)
class SourceLeads:
    """One source's leads in creation order, as the likelihood sees them."""

    day: np.ndarray  # creation day (datetime64[D])
    #: The log-odds of the lead's chance of the event before the source's shift (the
    #: champion's, or 0 without one).
    baseline: np.ndarray
    state: np.ndarray  # EVENT, OTHER or NEITHER at the report's date
    event_by_age: np.ndarray  # F_e at the lead's age at the report's date
    other_by_age: np.ndarray  # F_o likewise

    def part(self, rows: slice) -> SourceLeads:
        return SourceLeads(
            self.day[rows], self.baseline[rows], self.state[rows], self.event_by_age[rows],
            self.other_by_age[rows],
        )  # fmt: skip

    def log_likelihood(self, p: np.ndarray) -> np.ndarray:
        """Each lead's log-probability of its state when its chance of the event is `p` (up
        to terms that do not depend on `p`)."""
        neither = p * (1 - self.event_by_age) + (1 - p) * (1 - self.other_by_age)
        chance = np.where(self.state == EVENT, p, np.where(self.state == OTHER, 1 - p, neither))
        return np.log(np.maximum(chance, _TINY))

    def chances(self, shift: float) -> np.ndarray:
        """Each lead's chance of the event when the source shifts its log-odds by `shift`."""
        return expit(self.baseline + shift)

    def fitted_shift(self) -> float:
        """The shift of the log-odds that makes these leads' states likeliest."""
        fit = minimize_scalar(
            lambda shift: -self.log_likelihood(self.chances(shift)).sum(),
            bounds=(-MAX_SHIFT, MAX_SHIFT),
            method="bounded",
        )
        return float(fit.x)

    def expected_events(self, shift: float) -> float:
        return float((self.chances(shift) * self.event_by_age).sum())


def most_likely_change(
    source: str,
    signal: str,
    direction: Direction,
    leads: SourceLeads,
    threshold: float = THRESHOLD,
) -> RateChange | None:
    """The change of the source's rate most supported by its leads' states, named when its
    evidence reaches `threshold`; None with too few leads to know the old rate."""
    days, first = np.unique(leads.day, return_index=True)
    candidates = first >= MIN_LEADS_BEFORE
    if not candidates.any():
        return None

    # The evidence weighs the leads since each day against the rate fitted on the settled
    # leads (most of whose events have had time to arrive): a change among the young leads does
    # not dilute it, and no day is chosen for being extreme (a rate fitted on a short stretch
    # before the most extreme day would be). Once a change is old, the settled leads include
    # some since it, which can move the most likely day: that is found again with the rate
    # fitted on the leads before it, until it stays put.
    odds_ratios = ODDS_RATIOS[direction]

    def against(old: SourceLeads) -> tuple[np.ndarray, np.ndarray]:
        """Each odds ratio's log-likelihood ratio by day, and their mixture's."""
        each = _evidence(leads, old.fitted_shift(), odds_ratios, first)
        mixed = logsumexp(each, axis=0) - math.log(len(odds_ratios))
        return each, np.where(candidates, mixed, -np.inf)

    settled = int((leads.event_by_age >= SETTLED).sum())
    each, located = against(leads.part(slice(0, max(settled, MIN_LEADS_BEFORE))))
    strongest = float(located.max())
    best = int(np.argmax(located))
    for _ in range(ROUNDS):
        each, located = against(leads.part(slice(0, int(first[best]))))
        if int(np.argmax(located)) == best:
            break
        best = int(np.argmax(located))
    split = int(first[best])
    close = np.flatnonzero(located >= located[best] - INTERVAL_NATS)
    before, after = leads.part(slice(0, split)), leads.part(slice(split, None))
    shift_before = before.fitted_shift()
    # The odds ratio since, as the mixture weighs each against the leads since: bounded by the
    # ratios weighed, where a fit on a few young leads would run to a rate of 0 or 1.
    weights = np.exp(each[:, best] - logsumexp(each[:, best]))
    shift_since = shift_before + float(weights @ np.log(odds_ratios))
    return RateChange(
        source=source,
        signal=signal,
        direction=direction,
        since=str(days[best]),
        since_interval=(str(days[close[0]]), str(days[close[-1]])),
        evidence=strongest,
        threshold=threshold,
        rate_before=float(before.chances(shift_before).mean()),
        rate_after=float(after.chances(shift_since).mean()),
        leads_before=split,
        leads_after=len(leads.day) - split,
        events_after=int((after.state == EVENT).sum()),
        ended_otherwise_after=int((after.state == OTHER).sum()),
        expected_after=after.expected_events(shift_before),
    )


def _evidence(
    leads: SourceLeads, shift: float, odds_ratios: tuple[float, ...], first: np.ndarray
) -> np.ndarray:
    """For each odds ratio and each day (`first`: the index of its first lead), the log of the
    likelihood ratio of the leads created on or after it: their odds times that ratio against
    the old ones (their baseline shifted by `shift`)."""
    unchanged = leads.log_likelihood(leads.chances(shift))
    ratios = np.stack(
        [leads.log_likelihood(leads.chances(shift + math.log(r))) - unchanged for r in odds_ratios]
    )
    by_day = np.add.reduceat(ratios, first, axis=1)
    return np.cumsum(by_day[:, ::-1], axis=1)[:, ::-1]
