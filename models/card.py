"""The model card: what a trained scorer knows about its own making, saved with it.

Training writes it, the scorer file carries it, and the API, the CLI and the reports read it as
typed fields, so a renamed key fails where it is written instead of in six readers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer, computed_field

#: Times are written as `datetime.isoformat()` text, as every card since the first has been.
IsoTime = Annotated[AwareDatetime, PlainSerializer(datetime.isoformat, return_type=str)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Window(_Frozen):
    """When the features of a set of leads were known: the first and the last lead."""

    start: IsoTime
    end: IsoTime


class Leak(_Frozen):
    """A field the leakage guard flagged, and whether the schema accepts it anyway."""

    field: str
    check: str
    why: str
    #: The schema's written reason to keep the field (`accept_leak`); None excludes it.
    accepted_because: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def excluded(self) -> bool:
        return self.accepted_because is None


class TimeProxyDecision(_Frozen):
    """Whether one candidate keeps a field whose values moved with time, and the measurement
    behind it: the candidate's validation AUC with and without the field, and the paired
    bootstrap 95% interval of the difference (without minus with)."""

    field: str
    model_kind: str
    #: How well the field alone tells training leads from the newest ones (adversarial AUC).
    shift_auc: float
    auc_with: float
    auc_without: float
    interval_low: float
    interval_high: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def excluded(self) -> bool:
        """Excluded only when the candidate does clearly better on the newest leads without it:
        a difference within the noise of the validation leads keeps the field."""
        return self.interval_low > 0


class ModelResult(_Frozen):
    """One fitted model's validation AUC (how it was chosen) and holdout metrics."""

    validation_auc: float
    holdout: dict[str, float]


class ModelInfo(_Frozen):
    """What the model kind reports about its fit (LightGBM: trees kept and parameters)."""

    best_iteration: int | None = None
    params: dict[str, Any] = {}
    #: Leads the served model was refit on (training and holdout), when it was.
    refit_leads: int | None = None
    #: Trees chosen by early stopping before the refit scaled them to the larger set.
    early_stopped_iteration: int | None = None
    #: Settled newest leads the refit model's intercept was re-estimated on; 0 when too few
    #: were settled and the calibration measured on the validation leads was kept.
    recalibration_leads: int | None = None


class RunFacts(_Frozen):
    """What a training run knows whichever of its models it serves: data, windows, guard."""

    trained_at: IsoTime
    training_window: Window
    #: None for the rules fallback, which is not evaluated on a holdout.
    holdout_window: Window | None = None
    n_train: int
    n_holdout: int
    n_fit: int | None = None
    n_validation: int | None = None
    train_win_rate: float | None = None
    max_censoring_weight: float | None = None
    leads_per_month: float | None = None
    sales_capacity: int | None = None
    leaks: tuple[Leak, ...] = ()
    time_proxies: tuple[TimeProxyDecision, ...] = ()
    candidates: dict[str, ModelResult] = {}
    baselines: dict[str, ModelResult] = {}


class ModelCard(RunFacts):
    """A served model's provenance and holdout results."""

    model_kind: str
    #: The rules score served while no model has been promoted (never registered).
    fallback: bool = False
    metrics: dict[str, float] = {}
    model_info: ModelInfo = ModelInfo()

    @property
    def seen_until(self) -> datetime:
        """The newest lead the model learnt from or was judged on."""
        return (self.holdout_window or self.training_window).end

    @property
    def learnt_until(self) -> datetime:
        """The newest lead the model learnt from: the holdout's last once it was refit on it."""
        return self.seen_until if self.model_info.refit_leads else self.training_window.end

    @property
    def excluded_fields(self) -> tuple[str, ...]:
        """Fields this model does not read: excluded leaks, and time proxies it does worse with."""
        leaks = [leak.field for leak in self.leaks if leak.excluded]
        proxies = [
            p.field for p in self.time_proxies if p.model_kind == self.model_kind and p.excluded
        ]
        return tuple(leaks + proxies)
