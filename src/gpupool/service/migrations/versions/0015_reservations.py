"""Advance reservations: accelerators held for a window, for tenants or maintenance (ADR 0020).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=False),
        sa.Column("tenants", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(length=1024), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reservations_end_ms", "reservations", ["end_ms"])


def downgrade() -> None:
    op.drop_index("ix_reservations_end_ms", table_name="reservations")
    op.drop_table("reservations")
