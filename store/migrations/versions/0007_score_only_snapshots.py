"""A score snapshot may have no reasons: the caller asked for the score alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("score_snapshots") as batch:
        batch.alter_column("reasons", existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE score_snapshots SET reasons = '[]' WHERE reasons IS NULL")
    with op.batch_alter_table("score_snapshots") as batch:
        batch.alter_column("reasons", existing_type=sa.JSON(), nullable=False)
