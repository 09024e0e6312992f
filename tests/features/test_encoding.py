"""The encoder is the one feature path of training and serving, so its rules must hold exactly."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from features.encoding import EncodingError, FeatureEncoder, fit_encoder
from features.schema import FieldType, LeadSchema, parse_schema

#: A few training leads: "seminar" is observed 3 times, "podcast" twice, "webinar" (declared) once.
LEADS: list[dict[str, Any]] = [
    {"lead_id": "a", "source": "seminar", "industry": "retail", "page_views": 3},
    {"lead_id": "b", "source": "podcast", "industry": "software", "page_views": 10},
    {"lead_id": "c", "source": "seminar", "industry": "software", "demo_requested": True},
    {"lead_id": "d", "source": "webinar", "industry": "software", "sales_rating": "hot"},
    {"lead_id": "e", "source": "podcast", "lead_type": "SQL", "sales_rating": "cold"},
    {"lead_id": "f", "source": "seminar", "country": "DE", "company_size": 250.0},
]


@pytest.fixture(scope="module")
def encoder(demo_schema: LeadSchema) -> FeatureEncoder:
    """Fitted with every observed category kept (the few leads here are all rare)."""
    return fit_encoder(demo_schema, LEADS, min_count=1)


def column(encoder: FeatureEncoder, name: str) -> int:
    return encoder.feature_names.index(name)


def encode_one(encoder: FeatureEncoder, **values: Any) -> dict[str, float]:
    """Encode one lead and read its row back by column name."""
    row = encoder.encode([values])[0]
    return dict(zip(encoder.feature_names, row.tolist(), strict=True))


def test_columns_are_the_schema_model_fields_in_order(
    encoder: FeatureEncoder, demo_schema: LeadSchema
) -> None:
    """A saved model relies on the column order the schema fixes."""
    assert encoder.feature_names == [f.name for f in demo_schema.model_fields_in_order]
    categorical = {f.name for f in demo_schema.fields if f.type is FieldType.CATEGORICAL}
    assert [encoder.feature_names[i] for i in encoder.categorical_indices] == [
        n for n in encoder.feature_names if n in categorical
    ]


def test_sales_rating_is_never_a_column_even_when_leads_carry_it(
    encoder: FeatureEncoder,
) -> None:
    """The leaky field is in the training leads; it still must not become an input."""
    assert "sales_rating" not in encoder.feature_names
    for name in ("email", "full_name", "lead_id", "created_at"):
        assert name not in encoder.feature_names


def test_declared_categories_come_first_then_observed_by_frequency(
    encoder: FeatureEncoder, demo_schema: LeadSchema
) -> None:
    """Stable codes across retrains: the schema's order, then the data's most common first."""
    source = encoder.columns[column(encoder, "source")]
    declared = demo_schema.by_name["source"].categories
    assert declared is not None
    assert source.categories == (*declared, "seminar", "podcast")
    industry = encoder.columns[column(encoder, "industry")]
    assert industry.categories == ("software", "retail")
    assert encoder.columns[column(encoder, "page_views")].categories == ()


def test_categories_encode_as_their_vocabulary_position(encoder: FeatureEncoder) -> None:
    """The model sees a category as its index in the fitted vocabulary."""
    source = encoder.columns[column(encoder, "source")]
    row = encode_one(encoder, source="podcast", industry=" retail ", lead_type="PQL")
    assert row["source"] == source.categories.index("podcast")
    assert row["industry"] == 1.0  # surrounding blanks do not make a new category
    assert row["lead_type"] == 2.0  # PQL is the third declared lead type


@pytest.mark.parametrize("missing", [None, math.nan, np.float64("nan"), "", "   "])
def test_missing_values_encode_as_nan(encoder: FeatureEncoder, missing: Any) -> None:
    """Missing values go down LightGBM's missing branch instead of being refused."""
    row = encode_one(encoder, source=missing, page_views=missing, demo_requested=missing)
    assert math.isnan(row["source"])
    assert math.isnan(row["page_views"])
    assert math.isnan(row["demo_requested"])


def test_numpy_float32_nan_counts_as_missing(demo_schema: LeadSchema) -> None:
    """Frames read from parquet or cast to float32 carry numpy NaNs; they are still missing."""
    nan32 = np.float32("nan")
    encoder = fit_encoder(demo_schema, [{"industry": nan32}, {"industry": "retail"}], min_count=1)
    assert encoder.columns[column(encoder, "industry")].categories == ("retail",)
    assert math.isnan(encode_one(encoder, demo_requested=nan32)["demo_requested"])


def test_absent_fields_encode_as_nan_and_unseen_categories_as_other(
    encoder: FeatureEncoder,
) -> None:
    """A lead may leave fields out, and serving meets categories training never saw."""
    row = encode_one(encoder, source="carrier_pigeon", industry="Software")
    source = encoder.columns[column(encoder, "source")]
    assert row["source"] == len(source.categories)
    assert row["industry"] == 2.0  # categories are case-sensitive: "other" after the two seen
    assert math.isnan(row["company_size"])


def test_rare_categories_share_the_other_code_apart_from_missing(demo_schema: LeadSchema) -> None:
    """Levels under `min_count` leads (and unseen ones) are one group; missing stays NaN."""
    counts = {"retail": 12, "software": 10, "health": 9, "mining": 1}
    leads = [{"industry": name} for name, n in counts.items() for _ in range(n)]
    encoder = fit_encoder(demo_schema, [*leads, {"industry": None}])
    industry = encoder.columns[column(encoder, "industry")]
    assert industry.categories == ("retail", "software")
    codes = [encode_one(encoder, industry=v)["industry"] for v in ("health", "mining", "new")]
    assert codes == [2.0, 2.0, 2.0]
    assert math.isnan(encode_one(encoder, industry=None)["industry"])
    # Declared categories keep their code however rare: the tenant named them.
    declared = demo_schema.by_name["source"].categories
    assert encoder.columns[column(encoder, "source")].categories == declared


def test_encoders_saved_before_grouping_encode_as_they_did() -> None:
    """A model trained when unseen and rare categories were NaN must keep reading them so."""
    saved = {
        "columns": [
            {"name": "industry", "kind": "categorical", "categories": ["retail", "software"]},
            {"name": "page_views", "kind": "numeric", "categories": []},
        ]
    }
    encoder = FeatureEncoder.from_dict(saved)
    rows = encoder.encode([{"industry": "software", "page_views": 3}, {"industry": "mining"}])
    np.testing.assert_array_equal(rows, [[1.0, 3.0], [math.nan, math.nan]])
    assert FeatureEncoder.from_dict(encoder.to_dict()) == encoder


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, 1.0), (False, 0.0), ("yes", 1.0), ("no", 0.0), (" TRUE ", 1.0), (1, 1.0), (0, 0.0)],
)
def test_boolean_values_from_the_usual_spellings(
    encoder: FeatureEncoder, value: Any, expected: float
) -> None:
    """CRMs export booleans as true/false, yes/no or 1/0; all mean the same."""
    assert encode_one(encoder, demo_requested=value)["demo_requested"] == expected


def test_numbers_in_strings_are_read(encoder: FeatureEncoder) -> None:
    """CSV imports give numbers as text."""
    row = encode_one(encoder, page_views="12", company_size=" 40.5 ")
    assert (row["page_views"], row["company_size"]) == (12.0, 40.5)


@pytest.mark.parametrize(
    ("values", "field"),
    [({"page_views": "lots"}, "page_views"), ({"demo_requested": "maybe"}, "demo_requested")],
)
def test_unreadable_value_raises_naming_the_field(
    encoder: FeatureEncoder, values: dict[str, Any], field: str
) -> None:
    """A bad value is an error the caller can point at, not a silent NaN."""
    with pytest.raises(EncodingError, match=field):
        encoder.encode([values])


def test_dict_round_trip_encodes_identically(encoder: FeatureEncoder) -> None:
    """Serving rebuilds the encoder from the saved dict; it must encode as training did."""
    restored = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    assert restored == encoder
    leads = [*LEADS, {"source": "unseen", "page_views": None}, {"demo_requested": "no"}]
    np.testing.assert_array_equal(restored.encode(leads), encoder.encode(leads))


def test_max_categories_caps_the_vocabulary(demo_schema: LeadSchema) -> None:
    """Categories beyond the cap are grouped as "other", keeping the vocabulary bounded."""
    leads = [{"industry": "software"}] * 3 + [{"industry": "retail"}] * 2 + [{"industry": "gov"}]
    capped = fit_encoder(demo_schema, leads, max_categories=2, min_count=1)
    industry = capped.columns[column(capped, "industry")]
    assert industry.categories == ("software", "retail")
    assert encode_one(capped, industry="gov")["industry"] == 2.0  # "other"
    # The cap counts declared categories too.
    source = capped.columns[column(capped, "source")]
    assert source.categories == ("webinar", "paid_search")


def test_fit_reads_leads_from_a_one_shot_iterator() -> None:
    """`fit_encoder` takes any iterable, e.g. a generator over store rows."""
    schema = parse_schema(
        "name: t\nfields:\n"
        "  - {name: lead_id, type: text, role: id}\n"
        "  - {name: plan, type: categorical}\n"
    )
    encoder = fit_encoder(schema, (lead for lead in [{"plan": "pro"}, {"plan": 3.0}]), min_count=1)
    assert encoder.columns[0].categories == ("pro", "3")
    assert encode_one(encoder, plan=3)["plan"] == 1.0


def test_numeric_columns_keep_the_training_leads_quantiles(
    encoder: FeatureEncoder, demo_schema: LeadSchema
) -> None:
    """A reason says where a number stands among the training leads (`features.phrases`):
    the encoder keeps each numeric field's quantiles, saved and loaded with it; from a handful
    of leads, none."""
    assert encoder.columns[column(encoder, "page_views")].quantiles == ()  # two values only
    leads = [{"lead_id": str(i), "page_views": float(i), "source": "seminar"} for i in range(150)]
    encoder = fit_encoder(demo_schema, leads)
    views = encoder.columns[column(encoder, "page_views")]
    assert views.quantiles == tuple(np.quantile(np.arange(150.0), np.linspace(0, 1, 21)))
    assert encoder.columns[column(encoder, "source")].quantiles == ()
    saved = json.loads(json.dumps(encoder.to_dict()))
    assert FeatureEncoder.from_dict(saved) == encoder
    for described in saved["columns"]:
        del described["quantiles"]  # an encoder saved before quantiles were kept
    assert FeatureEncoder.from_dict(saved).columns[column(encoder, "page_views")].quantiles == ()
