"""A high-cardinality category (campaign, landing page) reaches the models and carries its
signal: inferred as a category, encoded with its rare values grouped, learned by LightGBM and the
logistic regression, and explained with the lead's own value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.encoding import FeatureEncoder, fit_encoder
from features.schema import FieldRole, FieldType, LeadSchema
from features.schema_inference import ColumnRoles, infer_schema
from training.candidates import BoosterConfig, Encoded, calibrated, fit_boosted, fit_linear

LEVELS = 300
FIT_SHARE = 0.7


@pytest.fixture(scope="module")
def export() -> tuple[pd.DataFrame, np.ndarray]:
    """Leads whose only signal is their landing page: half the pages convert at 45%, half at 5%;
    page sizes are skewed (16 leads at the median), so many have fewer than ten leads."""
    rng = np.random.default_rng(7)
    sizes = np.maximum(1, rng.lognormal(2.8, 1.0, LEVELS).round().astype(int))
    rates = rng.choice([0.05, 0.45], LEVELS)
    page = np.repeat(np.arange(LEVELS), sizes)
    order = rng.permutation(len(page))
    page = page[order]
    frame = pd.DataFrame(
        {
            "lead": [f"L{i}" for i in range(len(page))],
            "landing_page": [f"lp-{p:04d}" for p in page],
            "visits": rng.integers(0, 20, len(page)).astype(str),
        },
        dtype=object,
    )
    return frame, (rng.random(len(page)) < rates[page]).astype(int)


@pytest.fixture(scope="module")
def schema(export: tuple[pd.DataFrame, np.ndarray]) -> LeadSchema:
    return infer_schema(export[0], ColumnRoles(id="lead"), name="synthetic")


def split(
    frame: pd.DataFrame, label: np.ndarray, schema: LeadSchema
) -> tuple[FeatureEncoder, Encoded, Encoded, list[dict]]:
    """The encoder fitted on the first leads, both parts encoded, and the validation leads."""
    leads = frame.drop(columns="lead").to_dict(orient="records")
    cut = int(FIT_SHARE * len(leads))
    encoder = fit_encoder(schema, leads[:cut])
    weights = np.ones(len(leads))
    rows = encoder.encode(leads)
    fit = Encoded(rows[:cut], label[:cut], weights[:cut])
    return encoder, fit, Encoded(rows[cut:], label[cut:], weights[cut:]), leads[cut:]


def test_the_landing_page_is_inferred_as_a_categorical_input(schema: LeadSchema) -> None:
    field = schema.by_name["landing_page"]
    assert (field.type, field.role) == (FieldType.CATEGORICAL, FieldRole.FEATURE)
    assert field.is_model_input


def test_lightgbm_and_the_regression_learn_from_it(
    export: tuple[pd.DataFrame, np.ndarray], schema: LeadSchema
) -> None:
    """On validation leads never fitted on, the page alone ranks leads well above chance."""
    frame, label = export
    encoder, fit, valid, valid_leads = split(frame, label, schema)
    page = encoder.columns[encoder.feature_names.index("landing_page")]
    assert LEVELS // 4 < len(page.categories) < LEVELS, "frequent pages coded, rare ones grouped"
    other = float(len(page.categories))
    assert (fit.x[:, encoder.feature_names.index("landing_page")] == other).sum() > 0

    trees, _ = fit_boosted(schema, encoder, fit, valid, BoosterConfig(early_stopping_rounds=30))
    linear = fit_linear(encoder, fit, c=1.0)
    for model in (trees, linear):
        assert roc_auc_score(valid.y, model.margin(valid.x)) > 0.65, model.kind

    # A grouped page is explained with the lead's own value, which the rep recognises.
    scorer = calibrated("lightgbm", schema, trees, valid).scorer
    codes = valid.x[:, encoder.feature_names.index("landing_page")]
    grouped = valid_leads[int(np.flatnonzero(codes == other)[0])]
    reasons = scorer.score([grouped], per_direction=3)[0].reasons
    assert {r.field: r.value for r in reasons}["landing_page"] == grouped["landing_page"]
