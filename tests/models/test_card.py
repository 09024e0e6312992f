"""The model card: typed, and still readable in the layout every earlier version wrote."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from models.card import Leak, ModelCard

#: A card as the first leadloop versions wrote it into `scorer.json` (a plain dict).
EARLIER_CARD = {
    "trained_at": "2026-11-02T12:00:00+00:00",
    "training_window": {"start": "2025-08-01T13:00:00+00:00", "end": "2026-05-01T09:00:00+00:00"},
    "holdout_window": {"start": "2026-05-01T10:00:00+00:00", "end": "2026-09-30T15:00:00+00:00"},
    "n_train": 4000,
    "n_fit": 3400,
    "n_validation": 600,
    "n_holdout": 1000,
    "train_win_rate": 0.15,
    "max_censoring_weight": 4.2,
    "leads_per_month": 400.0,
    "sales_capacity": None,
    "leaks": [
        {
            "field": "Tags",
            "why": "dominant",
            "check": "dominant",
            "excluded": True,
            "accepted_because": None,
        },
    ],
    "candidates": {"lightgbm": {"validation_auc": 0.8, "holdout": {"roc_auc": 0.79}}},
    "baselines": {"rules": {"validation_auc": 0.7, "holdout": {"roc_auc": 0.71}}},
    "model_kind": "lightgbm",
    "metrics": {"roc_auc": 0.79},
    "model_info": {"best_iteration": 281, "params": {"num_leaves": 15}},
}


def test_an_earlier_card_reads_back_and_writes_the_same_document_plus_new_defaults() -> None:
    card = ModelCard.model_validate(EARLIER_CARD)
    assert card.holdout_window is not None
    assert card.seen_until == datetime(2026, 9, 30, 15, tzinfo=UTC)
    assert card.excluded_fields == ("Tags",)
    new_fields = {
        "refit_leads": None,
        "early_stopped_iteration": None,
        "recalibration_leads": None,
    }
    assert card.model_dump(mode="json") == EARLIER_CARD | {
        "fallback": False,
        "time_proxies": [],
        "model_info": EARLIER_CARD["model_info"] | new_fields,
    }


def test_the_rules_fallback_has_no_holdout_and_is_seen_until_its_training_end() -> None:
    card = ModelCard.model_validate(
        {k: EARLIER_CARD[k] for k in ("trained_at", "training_window", "n_train", "model_kind")}
        | {"n_holdout": 0, "fallback": True}
    )
    assert card.holdout_window is None and card.seen_until == card.training_window.end


def test_an_accepted_leak_is_kept() -> None:
    leak = Leak(field="score", check="dominant", why="AUC 0.9", accepted_because="set by a form")
    assert not leak.excluded and leak.model_dump()["excluded"] is False


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        ModelCard.model_validate(EARLIER_CARD | {"trained_at": "2026-11-02T12:00:00"})
