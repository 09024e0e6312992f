"""`GET /v1/model`: which model is served, trained when and on what, how good on the holdout."""

from __future__ import annotations

from fastapi import APIRouter

from serving.auth import requires
from serving.deps import ModelDep, StateDep
from serving.schemas import ModelOut
from store.api_keys import Scope

router = APIRouter(tags=["model"], dependencies=[requires(Scope.READ)])


@router.get("/v1/model", response_model=ModelOut)
def get_model_card(state: StateDep, model: ModelDep) -> ModelOut:
    """The served model: version, training window and holdout metrics."""
    card = model.card
    holdout = card.holdout_window
    return ModelOut(
        model_name=state.model_name,
        model_version=model.version,
        model_kind=card.model_kind,
        run_id=model.run_id,
        trained_at=card.trained_at.isoformat(),
        training_window=card.training_window.model_dump(mode="json"),
        holdout_window=holdout.model_dump(mode="json") if holdout else {},
        grades=model.scorer.grades.to_dict(),
        n_train=card.n_train,
        n_holdout=card.n_holdout,
        metrics=card.metrics,
        registry_champion=state.registry.champion,
        refused_versions=state.registry.refused,
    )
