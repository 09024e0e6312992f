"""Time-ordered splits that only use what was known at the split's cut-off."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from training.dataset import AS_OF, LABEL


class NotEnoughDataError(ValueError):
    """Too few closed leads, or a split without both won and not-won leads."""


@dataclass(frozen=True)
class TimeSplit:
    older: pd.DataFrame
    newer: pd.DataFrame
    cutoff: pd.Timestamp


def time_split(rows: pd.DataFrame, newer_fraction: float) -> TimeSplit:
    """Newest `newer_fraction` of leads by `as_of` (when their features were known) vs the rest.

    Leads sharing the cut-off time all go to the newer part, so no moment is split in two.
    """
    if not 0.0 < newer_fraction < 1.0:
        raise ValueError("newer_fraction must be between 0 and 1")
    ordered = rows.sort_values([AS_OF, "lead_id"], kind="stable").reset_index(drop=True)
    n_newer = math.ceil(len(ordered) * newer_fraction)
    if len(ordered) < 2 or n_newer >= len(ordered):
        raise NotEnoughDataError(f"{len(ordered)} closed leads are too few to split in time")
    cutoff = ordered[AS_OF].iloc[len(ordered) - n_newer]
    newer = ordered[ordered[AS_OF] >= cutoff]
    older = ordered[ordered[AS_OF] < cutoff]
    for name, part in (("older", older), ("newer", newer)):
        if part[LABEL].nunique() < 2:
            raise NotEnoughDataError(f"the {name} part of the time split lacks won or lost leads")
    return TimeSplit(
        older=older.reset_index(drop=True),
        newer=newer.reset_index(drop=True),
        cutoff=cutoff,
    )
