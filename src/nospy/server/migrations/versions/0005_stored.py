"""Stored forms of files (a digest of a squashfs file's compressed blocks) and the content they unpack to.

Revision ID: 0005_stored
Revises: 0004_diffs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_stored"
down_revision = "0004_diffs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_contents",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("stored_contents")
