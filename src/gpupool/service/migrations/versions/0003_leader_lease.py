"""Leader lease (who schedules the pool, its fencing token) and the GPU telemetry it publishes (ADR 0006).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lease = op.create_table(
        "leader_lease",
        sa.Column("pool", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_ms", sa.BigInteger(), nullable=False),
        sa.Column("renewed_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_cycle_ms", sa.BigInteger(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
    )
    # the one row every contender updates (never inserted concurrently)
    op.bulk_insert(
        lease,
        [{"pool": "default", "epoch": 0, "holder": "", "acquired_ms": 0, "renewed_ms": 0, "expires_ms": 0}],
    )

    op.create_table(
        "gpu_telemetry",
        sa.Column("allocation_id", sa.String(64), primary_key=True),
        sa.Column("samples", sa.JSON(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("gpu_telemetry")
    op.drop_table("leader_lease")
