"""Erased leads: a keyed hash of each erased lead id, so the lead is never stored again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erased_leads",
        sa.Column("lead_hash", sa.String(64), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lead_hash", name=op.f("pk_erased_leads")),
    )


def downgrade() -> None:
    op.drop_table("erased_leads")
