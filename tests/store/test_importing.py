"""`leadloop import`: CRM exports into the store, in one transaction, idempotently."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from benchmarks.common import SHARED
from benchmarks.datasets import maven_crm, x_education
from features.schema import FieldRole, FieldType, load_schema, parse_schema
from features.schema_inference import ColumnRoles
from store.export_reader import ImportFileError
from store.import_plan import OutcomeMapping
from store.importing import ImportRequest, MalformedRowsError, import_file
from store.repository import latest_import
from store.row_order import RowOrder, sequence_column
from store.tables import Lead, OutcomeEvent
from tests.support import NOW, PII_KEY

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")

EXPORT = """id,email,source,visits,stage,created,closed,
L1,ann@x.example,webinar,3,won,2025-01-01,2025-02-01,
L2,bob@x.example,ads,1,lost,2025-01-02,2025-01-20,
L3,,ads,,open,2025-01-03,,
L4,dan@x.example,webinar,7,junk,2025-01-04,2025-01-05,
"""


def write(tmp_path: Path, content: str, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def request(path: Path, tmp_path: Path, **overrides: object) -> ImportRequest:
    options = {
        "path": path,
        "roles": ColumnRoles(id="id", time="created", source="source"),
        "outcomes": OutcomeMapping(
            "stage", frozenset({"won"}), frozenset({"lost"}), frozenset({"junk"})
        ),
        "schema_out": tmp_path / "schema.yaml",
        "closed_at": "closed",
    }
    return ImportRequest(**(options | overrides))  # type: ignore[arg-type]


def counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with sessions() as session:
        leads = session.scalar(select(func.count()).select_from(Lead))
        events = session.scalar(select(func.count()).select_from(OutcomeEvent))
    return leads, events


def test_export_becomes_leads_outcomes_and_a_schema(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    report = import_file(request(write(tmp_path, EXPORT), tmp_path), sessions, PII_KEY, NOW)
    assert counts(sessions) == (4, 3)
    assert Counter(e["outcome"] for e in report.plan.outcomes) == {
        "won": 1,
        "lost": 1,
        "disqualified": 1,
    }
    assert report.plan.n_open == 1 and report.schema_written
    schema = load_schema(tmp_path / "schema.yaml")
    assert schema.by_name["email"].role is FieldRole.PII
    assert schema.by_name["visits"].type is FieldType.NUMERIC
    assert "stage" not in schema.by_name and "closed" not in schema.by_name
    with sessions() as session:
        l1 = session.get(Lead, "L1")
        won = session.scalars(select(OutcomeEvent).where(OutcomeEvent.lead_id == "L1")).one()
        dump = " ".join(map(str, session.execute(text("SELECT * FROM leads")).all()))
    assert l1.created_at == datetime(2025, 1, 1, tzinfo=UTC) and l1.source == "webinar"
    assert l1.attributes["visits"] == 3.0
    assert won.occurred_at == datetime(2025, 2, 1, tzinfo=UTC)
    assert "ann@x.example" not in dump


def test_reimporting_the_same_file_adds_nothing(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, EXPORT)
    import_file(request(path, tmp_path), sessions, PII_KEY, NOW)
    again = import_file(request(path, tmp_path), sessions, PII_KEY, NOW)
    assert counts(sessions) == (4, 3)
    assert (again.counts.accepted, again.counts.duplicates) == (0, 3)
    assert not again.schema_written  # the reviewed schema is reused, never overwritten


def test_malformed_rows_are_listed_by_line_and_nothing_is_stored(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = EXPORT + "L5,e@x.example,ads,2\nL6,f@x.example,ads,1,won,,2025-02-01,\n"
    bad += "L2,bob@x.example,ads,9,lost,2025-01-02,2025-01-20,\n"
    bad += "L7,g@x.example,ads,1,won,2025-03-01,2025-02-01,\n"
    with pytest.raises(MalformedRowsError) as raised:
        import_file(request(write(tmp_path, bad), tmp_path), sessions, PII_KEY, NOW)
    lines = {m.line: m.reason for m in raised.value.malformed}
    assert sorted(lines) == [6, 7, 8, 9]
    assert "fields" in lines[6] and "created" in lines[7]
    assert "line 3" in lines[8] and "before" in lines[9]
    assert counts(sessions) == (0, 0)
    assert not (tmp_path / "schema.yaml").exists()

    skipped = import_file(
        request(write(tmp_path, bad), tmp_path, skip_malformed=True), sessions, PII_KEY, NOW
    )
    assert counts(sessions) == (4, 3) and len(skipped.plan.malformed) == 4


def test_without_a_time_column_row_order_is_time_order(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, "id,visits,stage\na,1,won\nb,2,lost\nc,3,lost\n")
    roles = ColumnRoles(id="id")
    orders = [(RowOrder.OLDEST_FIRST, ["a", "b", "c"]), (RowOrder.NEWEST_FIRST, ["c", "b", "a"])]
    for row_order, expected in orders:
        out = tmp_path / f"{row_order}.yaml"
        report = import_file(
            request(
                path,
                tmp_path,
                roles=roles,
                closed_at=None,
                row_order=row_order,
                schema_out=out,
            ),
            sessions,
            PII_KEY,
            NOW,
        )
        assert report.plan.time_from_row_order
        ids = [lead["lead_id"] for lead in report.plan.leads]
        by_time = sorted(zip(report.plan.created_at, ids, strict=True))
        assert [lead for _, lead in by_time] == expected
        assert all(t < NOW for t in report.plan.created_at)


def test_an_export_without_any_usable_column_is_refused(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, "id,stage\na,won\nb,lost\n")
    with pytest.raises(ImportFileError, match="no field can feed the model"):
        import_file(
            request(path, tmp_path, roles=ColumnRoles(id="id"), closed_at=None),
            sessions,
            PII_KEY,
            NOW,
        )


def test_an_id_sequence_tells_which_end_of_the_file_is_newest(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, "id,number,visits,stage\na,103,1,won\nb,102,5,lost\nc,100,2,lost\n")
    report = import_file(
        request(path, tmp_path, roles=ColumnRoles(id="id"), closed_at=None), sessions, PII_KEY, NOW
    )
    assert report.sequence == "number" and report.plan.newest_first
    by_id = dict(
        zip((x["lead_id"] for x in report.plan.leads), report.plan.created_at, strict=True)
    )
    assert by_id["c"] < by_id["b"] < by_id["a"]
    shuffled = pd.DataFrame({"n": ["1", "3", "2", "4"], "v": ["x", "y", "z", "w"]})
    assert sequence_column(shuffled) is None


def test_unknown_columns_and_bad_options_are_refused(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, EXPORT)
    with pytest.raises(ImportFileError, match="no column 'Lead Source'.*the file has: id"):
        import_file(
            request(path, tmp_path, roles=ColumnRoles(id="id", source="Lead Source")),
            sessions,
            PII_KEY,
            NOW,
        )
    with pytest.raises(ImportFileError, match="--closed-at needs --time"):
        import_file(request(path, tmp_path, roles=ColumnRoles(id="id")), sessions, PII_KEY, NOW)
    with pytest.raises(ImportFileError, match="two outcomes"):
        OutcomeMapping("stage", frozenset({"won"}), frozenset({"won"}))
    with pytest.raises(ImportFileError, match="no such file"):
        import_file(request(tmp_path / "nope.csv", tmp_path), sessions, PII_KEY, NOW)
    assert counts(sessions) == (0, 0)


def test_a_broken_parquet_file_is_refused(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    broken = write(tmp_path, "not parquet at all", name="export.parquet")
    with pytest.raises(ImportFileError, match="not a readable Parquet file"):
        import_file(request(broken, tmp_path), sessions, PII_KEY, NOW)


def test_parquet_exports_import_like_csv(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    frame = pd.read_csv(write(tmp_path, EXPORT), dtype=str).drop(columns=["Unnamed: 7"])
    frame.to_parquet(tmp_path / "export.parquet")
    report = import_file(request(tmp_path / "export.parquet", tmp_path), sessions, PII_KEY, NOW)
    assert counts(sessions) == (4, 3) and report.plan.n_open == 1


@needs_shared
def test_x_education_leads(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    report = import_file(
        x_education(tmp_path),
        sessions,
        PII_KEY,
        NOW,
    )
    assert counts(sessions) == (9_240, 9_240)
    assert Counter(e["outcome"] for e in report.plan.outcomes)["won"] == 3_561
    schema = report.schema
    assert schema.by_name["Lead Source"].role is FieldRole.SOURCE
    assert schema.by_name["Do Not Email"].type is FieldType.BOOLEAN
    assert not any(f.name.startswith("Unnamed") or not f.name for f in schema.fields)


@needs_shared
def test_maven_crm_pipeline(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    report = import_file(
        maven_crm(tmp_path),
        sessions,
        PII_KEY,
        NOW,
    )
    assert counts(sessions) == (8_800, 6_711) and report.plan.n_open == 2_089
    assert report.schema.by_name["close_value"].type is FieldType.NUMERIC
    assert report.schema.field_with_role(FieldRole.TIME).name == "engage_date"
    assert all(e["occurred_at"] >= datetime(2016, 10, 1, tzinfo=UTC) for e in report.plan.outcomes)


def test_each_import_is_recorded_with_the_schema_it_used(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """`leadloop train` finds the schema of the store's leads there, even from elsewhere."""
    path = write(tmp_path, EXPORT)
    report = import_file(request(path, tmp_path), sessions, PII_KEY, NOW)
    with sessions() as session:
        recorded = latest_import(session)
    assert recorded is not None
    assert (recorded.file_name, recorded.n_leads, recorded.imported_at) == ("export.csv", 4, NOW)
    assert recorded.schema_path == str((tmp_path / "schema.yaml").resolve())
    assert parse_schema(recorded.schema_yaml) == report.schema
    reused = tmp_path / "reused.yaml"
    (tmp_path / "schema.yaml").rename(reused)
    import_file(request(path, tmp_path, schema_out=reused), sessions, PII_KEY, NOW)
    with sessions() as session:
        again = latest_import(session)
    assert again is not None and again.id > recorded.id
    assert again.schema_path == str(reused.resolve())


def test_an_outcome_value_that_never_occurs_is_a_warning(
    sessions: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A typo in --won imports every lead as open: nothing fails, so it must be said."""
    outcomes = OutcomeMapping("stage", frozenset({"Won"}), frozenset({"lost"}))
    report = import_file(
        request(write(tmp_path, EXPORT), tmp_path, outcomes=outcomes), sessions, PII_KEY, NOW
    )
    expected = (
        "--won 'Won' never occurs in 'stage'; its values: 'won' (1), 'lost' (1), 'open' (1), "
        "'junk' (1)"
    )
    assert report.warnings == (expected,)
    assert expected in caplog.messages


def test_importing_into_a_store_with_other_leads_is_a_warning(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    first = import_file(request(write(tmp_path, EXPORT), tmp_path), sessions, PII_KEY, NOW)
    again = import_file(request(write(tmp_path, EXPORT), tmp_path), sessions, PII_KEY, NOW)
    assert first.warnings == again.warnings == ()
    other = write(tmp_path, EXPORT.replace("L1,", "M1,").replace("L2,", "M2,"), "other.csv")
    report = import_file(request(other, tmp_path), sessions, PII_KEY, NOW)
    (warning,) = report.warnings
    assert warning.startswith(
        "the store already held 2 leads that are not in this file (the last import was "
        "export.csv); `leadloop train` learns from all of them together"
    )
    assert counts(sessions) == (6, 5)  # a warning, not a refusal


def test_a_semicolon_export_read_with_commas_is_refused_with_a_hint(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, EXPORT.replace(",", ";"))
    with pytest.raises(ImportFileError, match="the header reads as one column: try --sep ';'"):
        import_file(request(path, tmp_path), sessions, PII_KEY, NOW)
    report = import_file(request(path, tmp_path, sep=";"), sessions, PII_KEY, NOW)
    assert len(report.plan.leads) == 4
