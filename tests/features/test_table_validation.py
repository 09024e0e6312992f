"""The column-at-a-time check of a file's rows must never accept what the lead model refuses,
nor encode a value differently from the way the lead model's typed value is encoded."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features.encoding import FALSE_TOKENS, TRUE_TOKENS, FeatureEncoder, fit_encoder
from features.schema import FieldRole, FieldType, LeadSchema
from features.table_validation import plain_rows
from features.validation import LEAD_ID_KEY, lead_model
from store.demo_funnel import generate_demo_funnel
from store.export_reader import read_table

NOW = datetime.now(UTC)

#: Values every type of field meets in exports: plain ones, and forms only the lead model
#: reads (or refuses), which must never be taken as plain unless the lead model agrees.
ODD_TEXT = [
    "",
    " ",
    "\u00a0",
    "\u2003x",
    "x\u2028",
    "\x00",
    "a\tb",
    "a\nb",
    "\x85",
    "\x1f",
    "é",
    "x" * 201,
    "x" * 2001,
]
#: Letters Unicode case folding equates with ASCII ones (RE2's `(?i)` does).
FOLDS = {"s": "\u017f", "k": "\u212a"}
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-1e6, 1e6).map(lambda x: f"{x:.3f}"),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(
        [" 12", "12 ", "1_000", "1e400", "-1e400", "nan", "inf", "+5", "5.", ".5", "-0", "0x10",
         "1,5", "١٢", "1e-400", "00012", "1E3", "-3", "3.0", "1e+20"]
    ),
)  # fmt: skip
FLAGS = st.one_of(
    st.sampled_from(
        ["true", "True", "TRUE", "false", "yes", "No", "y", "N", "t", "F", "1", "0", "on", "off",
         " true", "1.0", "2", "oui", "yeſ", "falſe", "YEſ", "\u212a", "ｙｅｓ"]
    ),
    # Any mix of case, and letters RE2's case folding would take for ASCII ones.
    st.sampled_from(sorted(TRUE_TOKENS | FALSE_TOKENS)).flatmap(
        lambda token: st.tuples(*[st.sampled_from([c, c.upper(), FOLDS.get(c, c)]) for c in token])
    ).map("".join),
)  # fmt: skip


def moment_texts(moment: datetime) -> st.SearchStrategy[str]:
    """The ways exports write a time: ISO forms with and without zone, dates, Unix times."""
    iso = moment.isoformat()
    return st.sampled_from(
        [iso, moment.isoformat(sep=" "), moment.strftime("%Y-%m-%d"), iso + "Z",
         moment.isoformat(timespec="minutes") + "+05:30", iso + "-23:59",
         moment.isoformat(timespec="hours"), str(int(moment.replace(tzinfo=UTC).timestamp())),
         moment.strftime("%Y-%m-%dT%H:%M:%S.%f123")]
    )  # fmt: skip


MOMENTS = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).flatmap(
        moment_texts
    ),
    st.sampled_from(
        ["2025-02-30", "2025-08-01T24:00:00", "1989-12-31", (NOW + timedelta(days=2)).isoformat(),
         (NOW + timedelta(hours=23)).isoformat(), "2025-8-1", " 2025-08-01",
         "2025-08-01 10:00:00+00:00", "2025-08-01 10:00:00.123456789+00:00"]
    ),
)  # fmt: skip

BY_TYPE = {
    FieldType.NUMERIC: NUMBERS,
    FieldType.BOOLEAN: FLAGS,
    FieldType.TIMESTAMP: MOMENTS,
    FieldType.CATEGORICAL: st.sampled_from(["webinar", " webinar ", "Webinar", "other", "7"]),
    FieldType.TEXT: st.text(max_size=30),
}


def values(kind: FieldType | None) -> st.SearchStrategy[str | None]:
    own = BY_TYPE[kind] if kind else st.text(max_size=20)
    return st.one_of(st.none(), own, st.sampled_from(ODD_TEXT), st.text(max_size=12))


@pytest.fixture(scope="module")
def encoder(demo_schema: LeadSchema) -> FeatureEncoder:
    leads = generate_demo_funnel(400, seed=3).leads
    return fit_encoder(demo_schema, leads.to_dict(orient="records"), min_count=1)


def tables(schema: LeadSchema) -> st.SearchStrategy[pd.DataFrame]:
    """Tables of an id and one field of `schema` as text: one column at a time, so that whole
    rows are plain often enough for the property to be tried."""
    kinds: dict[str, FieldType | None] = {LEAD_ID_KEY: None} | {
        f.name: f.type for f in schema.fields if f.role is not FieldRole.ID
    }

    def table(name: str) -> st.SearchStrategy[pd.DataFrame]:
        column = st.lists(values(kinds[name]), min_size=1, max_size=8)
        return column.map(
            lambda texts: pd.DataFrame(
                {LEAD_ID_KEY: [f"L-{i}" for i in range(len(texts))], name: texts}, dtype=object
            )
        )

    return st.sampled_from(list(kinds)).flatmap(table)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b, equal_nan=True))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_plain_row_is_one_the_lead_model_accepts_and_encodes_alike(
    demo_schema: LeadSchema, encoder: FeatureEncoder, data: st.DataObject
) -> None:
    frame = data.draw(tables(demo_schema))
    lead_in = lead_model(demo_schema)
    plain = plain_rows(demo_schema, frame, NOW)
    event(f"plain rows: {int(plain.sum())} of {len(plain)}")
    records: list[dict[str, Any]] = frame.to_dict(orient="records")
    for i in np.flatnonzero(plain):
        try:
            typed = lead_in.model_validate(records[i]).model_dump()
        except ValidationError as exc:
            raise AssertionError(
                f"plain row {records[i]} refused by the lead model: {exc}"
            ) from None
        assert typed[LEAD_ID_KEY] == records[i][LEAD_ID_KEY]
        assert same(encoder.encode([typed])[0], encoder.encode_table(frame.iloc[[i]])[0])
    if plain.any():
        rows = encoder.encode_table(frame[plain])
        one_by_one = np.vstack(
            [encoder.encode_table(frame.iloc[[i]]) for i in np.flatnonzero(plain)]
        )
        assert same(rows, one_by_one)


def test_an_export_of_the_demo_funnel_is_plain_throughout(
    demo_schema: LeadSchema, encoder: FeatureEncoder, tmp_path: Path
) -> None:
    """The fast path is the common path: a CRM export of ordinary leads takes it entirely,
    and its matrix is the one the lead model's typed values give."""
    leads = generate_demo_funnel(2_000, seed=8).leads
    leads.to_csv(tmp_path / "leads.csv", index=False)
    frame = read_table(tmp_path / "leads.csv").frame
    assert plain_rows(demo_schema, frame, NOW).all()
    lead_in = lead_model(demo_schema)
    typed = [lead_in.model_validate(r).model_dump() for r in frame.to_dict(orient="records")]
    assert same(encoder.encode_table(frame), encoder.encode(typed))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("page_views", " 12"),  # the lead model strips it; the check does not try
        ("demo_requested", "on"),
        ("created_at", "1700000000"),  # a Unix time
        (LEAD_ID_KEY, " L-1 "),
        ("page_views", "-1"),  # below the field's minimum: refused
        ("created_at", "2999-01-01"),
        ("source", "web\x00inar"),
        (LEAD_ID_KEY, None),
    ],
)
def test_odd_values_are_left_to_the_lead_model(
    demo_schema: LeadSchema, column: str, value: str | None
) -> None:
    rows = [{LEAD_ID_KEY: "L-1", "page_views": "3"}, {LEAD_ID_KEY: "L-2", "page_views": "4"}]
    rows[0].setdefault(column, None)
    rows[1][column] = value
    frame = pd.DataFrame(rows, dtype=object)
    assert plain_rows(demo_schema, frame, NOW).tolist() == [True, False]


def test_text_arrow_cannot_hold_leaves_every_row_to_the_lead_model(
    demo_schema: LeadSchema,
) -> None:
    """A lone surrogate is not UTF-8: the column cannot be checked at once, so no row is plain."""
    frame = pd.DataFrame([{LEAD_ID_KEY: "L-1"}, {LEAD_ID_KEY: "L-2\ud800"}], dtype=object)
    assert not plain_rows(demo_schema, frame, NOW).any()


def test_missing_values_are_plain_and_encode_as_missing(
    demo_schema: LeadSchema, encoder: FeatureEncoder
) -> None:
    frame = pd.DataFrame([{LEAD_ID_KEY: "L-1", "page_views": None, "source": " "}], dtype=object)
    assert plain_rows(demo_schema, frame, NOW).all()
    row = dict(zip(encoder.feature_names, encoder.encode_table(frame)[0], strict=True))
    assert math.isnan(row["page_views"]) and math.isnan(row["source"])
