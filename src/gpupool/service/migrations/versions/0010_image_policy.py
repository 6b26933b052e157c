"""Image policy: the container registries a tenant's jobs may use.

Revision ID: 0010
Revises: 0009

A tenant's ``allowed_registries`` null means "as its parent" (every registry at the top of
the tree), so an upgrade changes nothing for anyone (ADR 0013).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("allowed_registries", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("allowed_registries")
