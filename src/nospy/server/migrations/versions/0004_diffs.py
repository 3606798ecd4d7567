"""Image diffs: what changed between the firmware images of two checks.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_diffs"
down_revision = "0003_monitor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "diffs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Text(), nullable=False),
        sa.Column("old_check", sa.String(length=32), nullable=False),
        sa.Column("new_check", sa.String(length=32), nullable=False),
        sa.Column("old_name", sa.String(length=255), nullable=False),
        sa.Column("new_name", sa.String(length=255), nullable=False),
        sa.Column("old_sha256", sa.String(length=64), nullable=False),
        sa.Column("new_sha256", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_diffs_created"), "diffs", ["created"], unique=False)
    op.create_index(op.f("ix_diffs_state"), "diffs", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_diffs_state"), table_name="diffs")
    op.drop_index(op.f("ix_diffs_created"), table_name="diffs")
    op.drop_table("diffs")
