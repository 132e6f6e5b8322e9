"""Drop the copies of Optuna's ids: a study's was never written, a trial's never read.

Optuna's study is found by its name and its trial by its number, so neither id is needed, and
a trial's came from Optuna's private ``trial._trial_id``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tuner_trials") as batch:
        batch.drop_index(op.f("ix_tuner_trials_optuna_trial_id"))
        batch.drop_column("optuna_trial_id")
    with op.batch_alter_table("tuner_studies") as batch:
        batch.drop_column("optuna_study_id")


def downgrade() -> None:
    # The ids are gone; the older tuner reads neither, so they come back empty.
    with op.batch_alter_table("tuner_studies") as batch:
        batch.add_column(sa.Column("optuna_study_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("tuner_trials") as batch:
        batch.add_column(sa.Column("optuna_trial_id", sa.Integer(), nullable=True))
        batch.create_index(op.f("ix_tuner_trials_optuna_trial_id"), ["optuna_trial_id"])
