"""One lead at a time through LightGBM's fast single-row API: the same numbers as
`Booster.predict`, from any thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from models.scorer import Scorer
from models.single_row import SingleRowPredictor
from tests.support import TrainedSetup


@pytest.fixture(scope="module")
def rows(trained: TrainedSetup, scorers: dict[str, Scorer]) -> np.ndarray:
    """Demo leads as model rows, with missing values and categories the model never saw."""
    leads = trained.funnel.leads.sample(300, random_state=3)
    records = leads.astype(object).where(leads.notna(), None).to_dict(orient="records")
    records[0] = {"lead_id": "blank"}
    records[1] |= {"source": "a channel never seen", "industry": None}
    return scorers["lightgbm"].encoder.encode(records)


@pytest.mark.parametrize("contributions", [False, True], ids=["margin", "contributions"])
def test_one_row_is_what_booster_predict_gives(
    scorers: dict[str, Scorer], rows: np.ndarray, contributions: bool
) -> None:
    booster = scorers["lightgbm"].model.booster
    one = SingleRowPredictor(booster, contributions)
    expected = booster.predict(rows, raw_score=True, pred_contrib=contributions, num_threads=1)
    got = np.array([one(row) for row in rows]).reshape(expected.shape)
    np.testing.assert_array_equal(got, expected)


def test_threads_at_once_each_get_their_own_rows_numbers(
    scorers: dict[str, Scorer], rows: np.ndarray
) -> None:
    """Eight threads scoring at once get each row's own contributions, never another's: the
    call keeps the GIL, so one FastConfig serves them all."""
    booster = scorers["lightgbm"].model.booster
    one = SingleRowPredictor(booster, contributions=True)
    expected = booster.predict(rows, pred_contrib=True, num_threads=1)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(one, list(rows) * 4))
    np.testing.assert_array_equal(np.array(got), np.tile(expected, (4, 1)))


def test_the_scorer_answers_one_lead_as_it_answers_it_in_a_batch(
    scorers: dict[str, Scorer], rows: np.ndarray
) -> None:
    model = scorers["lightgbm"].model
    batch_margin, batch_contrib = model.margin(rows), model.contributions(rows)
    for i in range(0, len(rows), 37):
        np.testing.assert_allclose(model.margin(rows[i : i + 1]), batch_margin[i : i + 1])
        np.testing.assert_allclose(model.contributions(rows[i : i + 1]), batch_contrib[i : i + 1])
