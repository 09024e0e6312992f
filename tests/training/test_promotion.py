"""The promotion gate compares AUCs on the same holdout."""

from training.promotion import decide_promotion


def test_first_model_is_promoted() -> None:
    assert decide_promotion(0.61, None).promote


def test_equal_or_better_challenger_is_promoted_worse_is_not() -> None:
    assert decide_promotion(0.80, 0.80).promote
    assert decide_promotion(0.81, 0.80).promote
    decision = decide_promotion(0.79, 0.80)
    assert not decision.promote and "worse" in decision.reason and "0.8000" in decision.reason
