"""`nospy monitor`: the logs it follows, the agreements watched on them, releases checked, alerts.

Revision ID: 0003_monitor
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_monitor"
down_revision = "0002_cache"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=512), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("forked", sa.Text(), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("origin", "key"),
    )
    op.create_table(
        "monitor_watches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.String(length=128), nullable=False),
        sa.Column("agreement_sha256", sa.String(length=64), nullable=False),
        sa.Column("next_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["log_id"], ["monitor_logs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("log_id", "agreement_sha256"),
    )
    op.create_index(op.f("ix_monitor_watches_log_id"), "monitor_watches", ["log_id"], unique=False)
    op.create_table(
        "monitor_releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=256), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("image_name", sa.String(length=1024), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("found", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("verdicts_json", sa.Text(), nullable=True),
        sa.Column("new_failing_json", sa.Text(), nullable=True),
        sa.Column("report_json", sa.Text(), nullable=True),
        sa.Column("diff_json", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["watch_id"], ["monitor_watches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("watch_id", "log_index"),
    )
    op.create_index(op.f("ix_monitor_releases_product"), "monitor_releases", ["product"], unique=False)
    op.create_index(op.f("ix_monitor_releases_state"), "monitor_releases", ["state"], unique=False)
    op.create_index(op.f("ix_monitor_releases_watch_id"), "monitor_releases", ["watch_id"], unique=False)
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("log_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["log_id"], ["monitor_logs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_monitor_alerts_delivered"), "monitor_alerts", ["delivered"], unique=False)
    op.create_index(op.f("ix_monitor_alerts_log_id"), "monitor_alerts", ["log_id"], unique=False)


def downgrade() -> None:
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_releases")
    op.drop_table("monitor_watches")
    op.drop_table("monitor_logs")
