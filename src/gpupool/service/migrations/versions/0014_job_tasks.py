"""Job arrays: one row per task the loop decided about (ADR 0019).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_tasks",
        sa.Column("array_seq", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("allocation_id", sa.String(length=64), nullable=True),
        sa.Column("cluster", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=32), nullable=True),
        sa.Column("placement", sa.JSON(), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=True),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(["array_seq"], ["jobs.seq"]),
        sa.PrimaryKeyConstraint("array_seq", "idx"),
    )


def downgrade() -> None:
    op.drop_table("job_tasks")
