"""A trial's value is stored as Optuna stores one: the number when it is finite, and its type.

Before, an infinite value was stored as such and a NaN as NaN on PostgreSQL but as NULL on
SQLite, and every query that ranked trials had to test which values were finite. Now
``value_type`` says ``finite``, ``inf_pos``, ``inf_neg`` or ``nan`` (NULL when there is no
value), and ``value`` holds finite numbers only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TYPES = ("finite", "inf_pos", "inf_neg", "nan")
# Beyond the largest double: the only numbers past it are the infinities.
LARGEST = "1.7976931348623157e308"
# How PostgreSQL spells the non-finite values.
TEXT = ("NaN", "Infinity", "-Infinity")


def upgrade() -> None:
    with op.batch_alter_table("tuner_trials") as batch:
        batch.add_column(sa.Column("value_type", sa.String(8), nullable=True))
        batch.create_check_constraint(
            op.f("ck_tuner_trials_value_type"),
            "value_type IN ({})".format(", ".join(f"'{t}'" for t in TYPES)),
        )
    # PostgreSQL holds NaN, which equals itself there and sorts above infinity; SQLite stored
    # NaN as NULL, so its NaNs were lost before this revision.
    nan = "value = 'NaN'" if op.get_bind().dialect.name == "postgresql" else "0 = 1"
    op.execute(
        f"""UPDATE tuner_trials SET value_type = CASE
            WHEN {nan} THEN 'nan'
            WHEN value > {LARGEST} THEN 'inf_pos'
            WHEN value < -{LARGEST} THEN 'inf_neg'
            ELSE 'finite' END
        WHERE value IS NOT NULL"""
    )
    op.execute("UPDATE tuner_trials SET value = NULL WHERE value_type <> 'finite'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        nan, inf, minus_inf = (f"CAST('{v}' AS DOUBLE PRECISION)" for v in TEXT)
    else:
        nan, inf, minus_inf = "NULL", "9e999", "-9e999"
    op.execute(
        f"""UPDATE tuner_trials SET value = CASE value_type
            WHEN 'nan' THEN {nan} WHEN 'inf_pos' THEN {inf} ELSE {minus_inf} END
        WHERE value_type <> 'finite'"""
    )
    with op.batch_alter_table("tuner_trials") as batch:
        batch.drop_constraint(op.f("ck_tuner_trials_value_type"), type_="check")
        batch.drop_column("value_type")
