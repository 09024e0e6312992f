"""The promotion gate: a challenger replaces the champion only when it is not worse."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def decide_promotion(challenger_auc: float, champion_auc: float | None) -> PromotionDecision:
    """Compare holdout AUCs measured on the same leads."""
    if champion_auc is None:
        return PromotionDecision(True, "no champion yet: the first model becomes champion")
    if challenger_auc >= champion_auc:
        return PromotionDecision(
            True,
            f"holdout AUC {challenger_auc:.4f} is not worse than the champion's "
            f"{champion_auc:.4f} on the same leads",
        )
    return PromotionDecision(
        False,
        f"holdout AUC {challenger_auc:.4f} is worse than the champion's {champion_auc:.4f} "
        "on the same leads",
    )
