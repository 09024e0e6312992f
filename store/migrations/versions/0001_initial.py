"""Leads, score snapshots and outcome events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("lead_type", sa.String(200), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("pii_hashes", sa.JSON(), nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_leads")),
    )
    op.create_index(op.f("ix_leads_created_at"), "leads", ["created_at"])
    op.create_index(op.f("ix_leads_source"), "leads", ["source"])

    op.create_table(
        "outcome_events",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("occurred_at", Time, nullable=False),
        sa.Column("amount", sa.Numeric(14, 2, asdecimal=False), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("received_at", Time, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('won', 'lost', 'disqualified')",
            name=op.f("ck_outcome_events_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.lead_id"],
            name=op.f("fk_outcome_events_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outcome_events_event_id")),
    )
    op.create_index(
        op.f("ix_outcome_events_lead_id_occurred_at"), "outcome_events", ["lead_id", "occurred_at"]
    )

    op.create_table(
        "score_snapshots",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("scored_at", Time, nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.lead_id"],
            name=op.f("fk_score_snapshots_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_snapshots")),
    )
    op.create_index(
        op.f("ix_score_snapshots_lead_id_scored_at"), "score_snapshots", ["lead_id", "scored_at"]
    )
    op.create_index(op.f("ix_score_snapshots_scored_at"), "score_snapshots", ["scored_at"])


def downgrade() -> None:
    op.drop_table("score_snapshots")
    op.drop_table("outcome_events")
    op.drop_table("leads")
