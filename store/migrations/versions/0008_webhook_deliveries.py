"""Webhook deliveries: the outbox of score changes owed to the CRM, and each one's attempts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("event", sa.String(30), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("old_snapshot_id", Id, nullable=False),
        sa.Column("new_snapshot_id", Id, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Time, nullable=True),
        sa.Column("claimed_until", Time, nullable=True),
        sa.Column("last_attempt_at", Time, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("delivered_at", Time, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.lead_id"],
            name=op.f("fk_webhook_deliveries_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sqlite_autoincrement=True,  # ids of erased deliveries are never handed out again
    )
    op.create_index(
        op.f("ix_webhook_deliveries_status_next_attempt_at"),
        "webhook_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index(
        op.f("ix_webhook_deliveries_lead_id_id"), "webhook_deliveries", ["lead_id", "id"]
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
