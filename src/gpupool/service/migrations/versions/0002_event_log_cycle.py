"""Event log: the loop cycle each row belongs to (a replay feeds one cycle's events at a time).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("event_log") as batch:
        batch.add_column(sa.Column("cycle", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("event_log") as batch:
        batch.drop_column("cycle")
