"""A lead keeps the keyed hash of its e-mail domain, to flag leads of disqualified companies.

Leads stored before keep none until they are imported or scored again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("email_domain_hash", sa.String(64), nullable=True))
        batch.create_index("ix_leads_email_domain_hash", ["email_domain_hash"])


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.drop_index("ix_leads_email_domain_hash")
        batch.drop_column("email_domain_hash")
