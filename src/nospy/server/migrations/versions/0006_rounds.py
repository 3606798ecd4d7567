"""Monitor rounds in progress: who holds a log's round, since when, and its last sign of life.

Revision ID: 0006_rounds
Revises: 0005_stored
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_rounds"
down_revision = "0005_stored"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_rounds",
        sa.Column("lock", sa.String(length=600), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=300), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("progress", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lock"),
    )


def downgrade() -> None:
    op.drop_table("monitor_rounds")
