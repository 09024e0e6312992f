"""The promotion gate: paired bootstrap intervals on the holdout AUC difference.

A challenger is promoted only when
- it beats the best baseline it is not itself: the 95% interval of its AUC minus the
  baseline's lies above zero (a model no better than a points score is not worth serving);
- and, when there is a champion, it is at least as good: its AUC on the same leads is not
  lower, and the interval's lower end is above -`CHAMPION_TOLERANCE` (so a retrain on more
  data replaces an equal champion, but a worse one never does).

The champion is compared only on holdout leads it has not learnt from (after its
`learnt_until`): a champion refit on its own holdout would otherwise be judged on leads it was
fitted to and look better than it is. A retrain soon after the last one has few such leads;
with fewer than `MIN_COMPARED_OUTCOMES` won, or not won, among them, the champion cannot be
compared, the reason says so, and the baseline test decides alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from models.registry import LoadedScorer
from training.candidates import SERVABLE
from training.dataset import AS_OF, LABEL, WEIGHT
from training.metrics import Comparison, compare_auc, holdout_metrics
from training.pipeline import TrainedCandidate, holdout_leads

CHAMPION_TOLERANCE = 0.01
MIN_COMPARED_OUTCOMES = 30


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    comparisons: tuple[Comparison, ...] = ()


def decide_promotion(
    versus_baseline: Comparison,
    versus_champion: Comparison | None,
    no_champion: str = "no champion yet",
) -> PromotionDecision:
    """Apply the gate to comparisons measured on the same holdout (`no_champion` says why
    there is no champion comparison when there is none)."""
    comparisons = (versus_baseline,) + ((versus_champion,) if versus_champion else ())
    b = versus_baseline
    if not b.low > 0:  # written so that a NaN interval (a holdout without wins) fails too
        return PromotionDecision(
            False,
            f"not clearly better than the best baseline ({b.against}): AUC difference "
            f"{b.difference:+.4f}, 95% interval [{b.low:+.4f}, {b.high:+.4f}] includes 0",
            comparisons,
        )
    if versus_champion is None:
        return PromotionDecision(
            True,
            f"{no_champion}, and it beats the best baseline ({b.against}) by "
            f"{b.difference:+.4f} AUC [{b.low:+.4f}, {b.high:+.4f}]",
            comparisons,
        )
    c = versus_champion
    if not (c.difference >= 0 and c.low > -CHAMPION_TOLERANCE):
        return PromotionDecision(
            False,
            f"worse than the champion ({c.against}) on the same leads: AUC difference "
            f"{c.difference:+.4f}, 95% interval [{c.low:+.4f}, {c.high:+.4f}]",
            comparisons,
        )
    return PromotionDecision(
        True,
        f"beats the best baseline ({b.against}) by {b.difference:+.4f} AUC and is not worse "
        f"than the champion ({c.against}): {c.difference:+.4f} [{c.low:+.4f}, {c.high:+.4f}]",
        comparisons,
    )


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on a run, with the challenger it judged (which may be the regression
    put to the gate instead) and the champion's metrics on the same holdout."""

    candidate: TrainedCandidate
    decision: PromotionDecision
    champion_metrics: dict[str, float] | None


def gate(candidate: TrainedCandidate, champion: LoadedScorer | None) -> GateResult:
    """Compare the challenger with the best baseline and the champion on the same holdout.

    A challenger that does not clearly beat the logistic regression gives way to it: the
    regression is servable with exact explanations, and the served model must never be
    worse than the best baseline. It must then beat the rules score in turn.
    """
    y, w = candidate.holdout[LABEL].to_numpy(), candidate.holdout[WEIGHT].to_numpy()
    baseline = candidate.best_baseline
    versus_baseline = compare_auc(
        y, candidate.holdout_probability, baseline.probability, baseline.name, w
    )
    if not versus_baseline.low > 0 and baseline.name in SERVABLE:
        # A second look at the holdout, between two models: said in the reason.
        result = gate(candidate.switch(baseline.name), champion)
        note = (
            f"{candidate.chosen} did not clearly beat the {baseline.name} on the holdout "
            f"({versus_baseline.difference:+.4f} AUC [{versus_baseline.low:+.4f}, "
            f"{versus_baseline.high:+.4f}]), so the {baseline.name} was put to the gate: "
        )
        return replace(
            result, decision=replace(result.decision, reason=note + result.decision.reason)
        )
    if champion is None:
        return GateResult(candidate, decide_promotion(versus_baseline, None), None)
    unseen = (candidate.holdout[AS_OF] > champion.card.learnt_until).to_numpy()
    won = int(y[unseen].sum())
    if min(won, int(unseen.sum()) - won) < MIN_COMPARED_OUTCOMES:
        why = (
            f"the champion (version {champion.version}) was not compared: it learnt from all "
            f"but {int(unseen.sum())} of the holdout leads ({won} won), too few to judge it on"
        )
        return GateResult(candidate, decide_promotion(versus_baseline, None, why), None)
    leads = [lead for lead, new in zip(holdout_leads(candidate), unseen, strict=True) if new]
    probability = champion.scorer.predict_proba(leads)
    y, w = y[unseen], w[unseen]
    versus_champion = compare_auc(
        y,
        candidate.holdout_probability[unseen],
        probability,
        f"version {champion.version}, on the {int(unseen.sum()):,} holdout leads it never saw",
        w,
    )
    decision = decide_promotion(versus_baseline, versus_champion)
    return GateResult(candidate, decision, holdout_metrics(y, probability, w))
