"""Rights: token scopes, expiry and last use; the priority classes a tenant allows.

Revision ID: 0004
Revises: 0003

Tokens made before this revision keep every scope and never expire (``expires_ms`` null), so
an upgrade locks nobody out; new tokens get the default lifetime. A tenant's
``allowed_classes`` null means "as its parent" (the default set at the top of the tree).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(
            sa.Column("scopes", sa.String(64), nullable=False, server_default="read submit admin")
        )
        batch.add_column(sa.Column("expires_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("last_used_ms", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("allowed_classes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("allowed_classes")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("last_used_ms")
        batch.drop_column("expires_ms")
        batch.drop_column("scopes")
