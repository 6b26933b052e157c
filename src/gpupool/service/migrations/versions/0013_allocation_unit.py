"""Allocations and calls denominated in GPU-hours or effective (H100-equivalent) GPU-hours
(ADR 0018).

Revision ID: 0013
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("allocations", "calls"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("unit", sa.String(length=16), nullable=False, server_default="gpu_hours")
            )


def downgrade() -> None:
    for table in ("calls", "allocations"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("unit")
