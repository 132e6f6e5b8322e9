"""Confirmation runs: a trial's configuration trained again, in full, with fresh seeds.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ("complete", "pruned", "diverged", "failed", "interrupted")
VALUE_TYPES = ("finite", "inf_pos", "inf_neg", "nan")


def upgrade() -> None:
    op.create_table(
        "tuner_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("trial", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("wall_time_s", sa.Double(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("test_metrics", sa.JSON(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("losses", sa.LargeBinary(), nullable=False),
        sa.Column("lrs", sa.LargeBinary(), nullable=False),
        sa.Column("evals", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("value_type", sa.String(length=8), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "outcome IN ({})".format(", ".join(f"'{o}'" for o in OUTCOMES)),
            name=op.f("ck_tuner_confirmations_outcome"),
        ),
        sa.CheckConstraint(
            "value_type IN ({})".format(", ".join(f"'{t}'" for t in VALUE_TYPES)),
            name=op.f("ck_tuner_confirmations_value_type"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["tuner_studies.id"],
            name=op.f("fk_tuner_confirmations_study_id_tuner_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tuner_confirmations")),
        sa.UniqueConstraint(
            "study_id", "trial", "seed", name=op.f("uq_tuner_confirmations_study_id_trial_seed")
        ),
    )


def downgrade() -> None:
    op.drop_table("tuner_confirmations")
