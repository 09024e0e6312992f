"""Outcome events may also be lifecycle steps: handed_over and contacted.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CONSTRAINT = "ck_outcome_events_outcome_known"


def _replace_check(outcomes: tuple[str, ...]) -> None:
    # Batch mode: SQLite cannot alter a constraint in place, it copies the table.
    with op.batch_alter_table("outcome_events") as batch:
        batch.drop_constraint(op.f(CONSTRAINT), type_="check")
        batch.create_check_constraint(
            op.f(CONSTRAINT), "outcome IN (" + ", ".join(f"'{o}'" for o in outcomes) + ")"
        )


def upgrade() -> None:
    _replace_check(("won", "lost", "disqualified", "handed_over", "contacted"))


def downgrade() -> None:
    op.execute("DELETE FROM outcome_events WHERE outcome IN ('handed_over', 'contacted')")
    _replace_check(("won", "lost", "disqualified"))
