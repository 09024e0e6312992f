"""The lead schema is the single statement of what a model may see; bad schemas fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from features.schema import (
    FieldRole,
    FieldType,
    LeadSchema,
    SchemaError,
    load_schema,
    parse_schema,
)

#: The smallest valid schema: an id and one model input. Tests extend its field list.
BASE_FIELDS: list[dict[str, object]] = [
    {"name": "lead_id", "type": "text", "role": "id"},
    {"name": "page_views", "type": "numeric"},
]


def schema_text(*extra_fields: dict[str, object], base: bool = True) -> str:
    """YAML of a schema holding the base fields (unless `base` is false) plus `extra_fields`."""
    fields = [*(BASE_FIELDS if base else []), *extra_fields]
    return yaml.safe_dump({"name": "test", "fields": fields}, sort_keys=False)


def test_demo_schema_loads_with_its_roles(demo_schema: LeadSchema) -> None:
    """The bundled schema is what `leadloop demo-data` and training rely on."""
    assert demo_schema.name == "demo-b2b"
    assert demo_schema.id_field.name == "lead_id"
    time_field = demo_schema.field_with_role(FieldRole.TIME)
    assert time_field is not None and time_field.name == "created_at"
    assert {f.name for f in demo_schema.pii_fields} == {"email", "full_name"}


def test_demo_model_fields_leave_out_leaks_pii_ids_and_times(demo_schema: LeadSchema) -> None:
    """Only fields known at scoring time and usable by a tree model may reach it."""
    names = [f.name for f in demo_schema.model_fields_in_order]
    for excluded in ("sales_rating", "email", "full_name", "lead_id", "created_at"):
        assert excluded not in names
    assert {"source", "lead_type", "page_views", "demo_requested"} <= set(names)
    # The order is the schema's: encoders and saved models depend on a stable column order.
    declared = [f.name for f in demo_schema.fields]
    assert names == sorted(names, key=declared.index)


@pytest.mark.parametrize("role", ["feature", "source", "lead_type"])
def test_field_unknown_at_scoring_never_feeds_the_model(role: str) -> None:
    """`known_at_scoring: false` beats the role, or the model would learn from a leak."""
    late = {"name": "late", "type": "categorical", "role": role, "known_at_scoring": False}
    schema = parse_schema(schema_text(late))
    assert schema.by_name["late"].is_model_input is False
    assert "late" not in [f.name for f in schema.model_fields_in_order]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            schema_text({"name": "notes", "type": "text", "role": "feature"}),
            "notes",
            id="text-feature",
        ),
        pytest.param(
            schema_text({"name": "crm_id", "type": "text", "role": "id"}),
            "role id",
            id="two-ids",
        ),
        pytest.param(
            schema_text({"name": "page_views", "type": "numeric"}),
            "duplicate field names: page_views",
            id="duplicate-names",
        ),
        pytest.param(
            schema_text({"name": "tier", "type": "categorical", "monotone": "increasing"}),
            "monotone",
            id="monotone-categorical",
        ),
        pytest.param(
            schema_text({"name": "size", "type": "numeric", "categories": ["small", "large"]}),
            "categories only apply",
            id="categories-numeric",
        ),
        pytest.param(
            schema_text({"name": "lead_id", "type": "text", "role": "id"}, base=False),
            "no field can feed the model",
            id="no-model-input",
        ),
        pytest.param("name: test\nfields: [\n", "not valid YAML", id="invalid-yaml"),
        pytest.param("- just\n- a list\n", "invalid lead schema", id="not-a-mapping"),
    ],
)
def test_inconsistent_schema_is_refused_naming_the_problem(text: str, problem: str) -> None:
    """A tenant fixing a schema needs to know which field is wrong and why."""
    with pytest.raises(SchemaError, match="<string>") as caught:
        parse_schema(text)
    assert problem in str(caught.value)


def test_error_names_the_file_it_came_from(tmp_path: Path) -> None:
    """With several schemas around, the message must say which one is broken."""
    path = tmp_path / "broken.yaml"
    path.write_text(schema_text({"name": "page_views", "type": "numeric"}), encoding="utf-8")
    with pytest.raises(SchemaError, match="broken.yaml"):
        load_schema(path)


def test_missing_file_is_a_schema_error(tmp_path: Path) -> None:
    """A wrong path must surface as SchemaError, not a bare OSError from deep inside."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(SchemaError, match="absent.yaml"):
        load_schema(path)


def test_to_yaml_round_trips_to_an_equal_schema(demo_schema: LeadSchema) -> None:
    """Saved schemas (e.g. beside a model) must read back as exactly the same schema."""
    again = parse_schema(demo_schema.to_yaml())
    assert again == demo_schema
    assert again.model_fields_in_order == demo_schema.model_fields_in_order
    assert again.by_name["sales_rating"].known_at_scoring is False
    assert again.by_name["page_views"].monotone == "increasing"


def test_to_yaml_keeps_non_default_values_of_a_small_schema() -> None:
    """Defaults are left out of the YAML, so the values that differ must survive the trip."""
    schema = parse_schema(
        schema_text(
            {"name": "tier", "type": "categorical", "role": "source", "categories": ["a", "b"]},
            {"name": "rating", "type": "numeric", "known_at_scoring": False},
        )
    )
    again = parse_schema(schema.to_yaml())
    assert again == schema
    assert again.by_name["tier"].role is FieldRole.SOURCE
    assert again.by_name["tier"].categories == ("a", "b")
    assert again.by_name["rating"].type is FieldType.NUMERIC
