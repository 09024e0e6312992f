"""Reasons are exact: TreeSHAP contributions add up to the margin, score points to the score."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import PlattCalibration
from models.explain import MIN_REASON_POINTS, sum_by_field, to_score_points, top_reasons
from models.scorer import Scorer
from tests.models.conftest import KINDS
from tests.support import TrainedSetup
from training.candidates import records


@pytest.fixture(scope="module")
def leads(trained: TrainedSetup) -> list[dict]:
    rows = trained.funnel.leads.sample(400, random_state=7)
    return rows.astype(object).where(rows.notna(), None).to_dict(orient="records")


@pytest.fixture(scope="module", params=KINDS)
def scorer(request: pytest.FixtureRequest, scorers: dict[str, Scorer]) -> Scorer:
    return scorers[request.param]


def test_contributions_plus_expected_value_equal_the_raw_margin(
    scorer: Scorer, leads: list[dict]
) -> None:
    rows = scorer.encoder.encode(leads)
    contributions = scorer.contributions(rows)
    assert contributions.shape == (len(leads), len(scorer.feature_fields) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), scorer.margin(rows), atol=1e-9)


def test_tree_contributions_are_lightgbm_treeshap(
    scorers: dict[str, Scorer], leads: list[dict]
) -> None:
    """Per field, the contributions are LightGBM's own pred_contrib (one column per field)."""
    scorer = scorers["lightgbm"]
    rows = scorer.encoder.encode(leads)
    raw = scorer.model.booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(scorer.contributions(rows), raw, atol=1e-12)
    np.testing.assert_allclose(raw.sum(axis=1), scorer.model.booster.predict(rows, raw_score=True))


def test_score_points_add_up_to_the_distance_from_the_average_lead(
    scorer: Scorer, leads: list[dict]
) -> None:
    contributions = scorer.contributions(scorer.encoder.encode(leads))
    margin, expected = contributions.sum(axis=1), contributions[:, -1]
    by_field = contributions[:, :-1]
    points = to_score_points(by_field, margin, expected, scorer.calibration)
    p, p0 = scorer.calibration.probability(margin), scorer.calibration.probability(expected)
    np.testing.assert_allclose(points.sum(axis=1), 100 * (p - p0), atol=1e-9)
    # Rescaling by a positive factor keeps every contribution's sign.
    assert np.all(np.sign(points) == np.sign(by_field))


def test_reasons_are_the_largest_contributions_with_the_lead_values(
    scorer: Scorer, leads: list[dict]
) -> None:
    scores = scorer.score(leads, per_direction=3)
    allowed = set(scorer.feature_fields)
    for lead, scored in zip(leads, scores, strict=True):
        impacts = [r.impact for r in scored.reasons]
        positives = [i for i in impacts if i > 0]
        negatives = [i for i in impacts if i < 0]
        assert impacts == positives + negatives
        assert positives == sorted(positives, reverse=True) and len(positives) <= 3
        assert negatives == sorted(negatives) and len(negatives) <= 3
        for reason in scored.reasons:
            assert reason.field in allowed
            assert reason.value == lead.get(reason.field)
    assert any(r.field == "demo_requested" for s in scores for r in s.reasons)


def test_sum_by_field_adds_columns_of_the_same_field() -> None:
    contributions = np.array([[1.0, 2.0, 4.0], [0.5, -1.0, 0.25]])
    by_field = sum_by_field(contributions, ["a", "b", "a"], ["a", "b", "c"])
    np.testing.assert_array_equal(by_field, [[5.0, 2.0, 0.0], [0.75, -1.0, 0.0]])


def test_score_points_use_the_derivative_when_the_lead_is_the_average() -> None:
    calibration = PlattCalibration(slope=1.3, intercept=-0.4)
    by_field = np.array([[0.2, -0.2]])
    margin = expected = np.array([0.5])
    points = to_score_points(by_field, margin, expected, calibration)
    p0 = calibration.probability(expected)[0]
    np.testing.assert_allclose(points, 100 * by_field * 1.3 * p0 * (1 - p0))


def test_top_reasons_skip_noise_and_keep_missing_values() -> None:
    points = np.array([8.0, -0.01, -3.0, 0.02, 1.5])
    fields = ["source", "industry", "company_size", "country", "page_views"]
    reasons = top_reasons(points, fields, {"source": "webinar", "page_views": 9}, per_direction=1)
    assert [(r.field, r.value, r.impact) for r in reasons] == [
        ("source", "webinar", 8.0),
        ("company_size", None, -3.0),
    ]
    assert all(abs(r.impact) >= MIN_REASON_POINTS for r in reasons)


@pytest.mark.parametrize("kind", ["lightgbm", "lightgbm_recency"])
def test_more_engagement_never_lowers_the_probability(
    scorers: dict[str, Scorer], leads: list[dict], kind: str
) -> None:
    """page_views, email_opens, form_fills and demo_requested are monotone-constrained."""
    scorer = scorers[kind]
    for field, values in [
        ("page_views", [0, 2, 5, 10, 30, 100]),
        ("email_opens", [0, 1, 3, 8, 20]),
        ("form_fills", [0, 1, 2, 5]),
        ("demo_requested", [False, True]),
    ]:
        curves = np.array(
            [scorer.predict_proba([lead | {field: v} for v in values]) for lead in leads]
        )
        assert np.all(np.diff(curves, axis=1) >= -1e-12), field


def test_contact_details_never_change_the_score(scorer: Scorer, leads: list[dict]) -> None:
    renamed = [
        lead | {"email": "someone.else@other.example", "full_name": "Zed Zee"} for lead in leads
    ]
    np.testing.assert_array_equal(scorer.predict_proba(leads), scorer.predict_proba(renamed))


def test_sales_filled_field_never_changes_the_score(scorer: Scorer, leads: list[dict]) -> None:
    assert "sales_rating" not in scorer.encoder.feature_names
    hot = [lead | {"sales_rating": "hot"} for lead in leads]
    cold = [lead | {"sales_rating": "cold"} for lead in leads]
    np.testing.assert_array_equal(scorer.predict_proba(hot), scorer.predict_proba(cold))


def test_missing_values_and_unseen_categories_are_scored(scorer: Scorer) -> None:
    leads = [{}, {"source": "carrier_pigeon", "country": "Atlantis", "company_size": None}]
    scores = scorer.score(leads)
    assert all(0.0 < s.probability < 1.0 and s.grade in "ABCD" for s in scores)


def test_holdout_rows_encode_like_raw_leads(trained: TrainedSetup, scorer: Scorer) -> None:
    """Training frames and API leads go through the same encoder: same rows, same numbers."""
    frame = trained.funnel.leads.head(50)
    from_frame = scorer.encoder.encode(records(frame, scorer.feature_fields))
    as_dicts = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    np.testing.assert_array_equal(from_frame, scorer.encoder.encode(as_dicts))
