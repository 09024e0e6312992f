"""Outcome events keep the CRM's own sequence number, when it sends one, to order equal times.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outcome_events", sa.Column("crm_sequence", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcome_events") as batch:
        batch.drop_column("crm_sequence")
