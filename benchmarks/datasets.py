"""The shared real CRM exports, imported as the README shows (the tests import them too)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import SHARED
from features.schema_inference import ColumnRoles
from store.import_plan import OutcomeMapping
from store.importing import ImportRequest


def x_education(directory: Path) -> ImportRequest:
    """X Education's leads: converted or not, no dates (row order stands for time)."""
    return ImportRequest(
        path=SHARED / "x_education" / "Leads.csv",
        roles=ColumnRoles(id="Prospect ID", source="Lead Source"),
        outcomes=OutcomeMapping("Converted", frozenset({"1"}), frozenset({"0"})),
        schema_out=directory / "x_education.yaml",
    )


def maven_crm(directory: Path) -> ImportRequest:
    """Maven CRM's pipeline: Won / Lost closed, Engaging and Prospecting open."""
    return ImportRequest(
        path=SHARED / "maven_crm" / "sales_pipeline.csv",
        roles=ColumnRoles(id="opportunity_id", time="engage_date"),
        outcomes=OutcomeMapping("deal_stage", frozenset({"Won"}), frozenset({"Lost"})),
        schema_out=directory / "maven_crm.yaml",
        closed_at="close_date",
    )
