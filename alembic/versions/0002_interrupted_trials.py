"""A trial stopped by Ctrl-C is recorded as interrupted, an outcome of its own.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("complete", "pruned", "diverged", "failed")
AFTER = (*BEFORE, "interrupted")


def _outcomes(outcomes: Sequence[str]) -> None:
    with op.batch_alter_table("tuner_trials") as batch:
        batch.drop_constraint(op.f("ck_tuner_trials_outcome"), type_="check")
        batch.create_check_constraint(
            op.f("ck_tuner_trials_outcome"),
            "outcome IN ({})".format(", ".join(f"'{o}'" for o in outcomes)),
        )


def upgrade() -> None:
    _outcomes(AFTER)


def downgrade() -> None:
    # The older tuner knew an interrupted trial only as failed.
    op.execute("UPDATE tuner_trials SET outcome = 'failed' WHERE outcome = 'interrupted'")
    _outcomes(BEFORE)
