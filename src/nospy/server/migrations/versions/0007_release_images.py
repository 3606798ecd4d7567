"""Every image of a release: a row per subject of a release manifest, not only its first.

Revision ID: 0007_release_images
Revises: 0006_rounds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_release_images"
down_revision = "0006_rounds"
branch_labels = None
depends_on = None

# SQLite keeps the old UNIQUE (watch_id, log_index) unnamed: batch mode names it by this convention
_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_UNNAMED = "uq_monitor_releases_watch_id"
_OLD_NAME = "monitor_releases_watch_id_log_index_key"  # PostgreSQL's name for it, restored by a downgrade


def _constraint(columns: list[str]) -> str:
    """The name of the unique constraint on ``columns`` (PostgreSQL names it; SQLite does not)."""
    for found in sa.inspect(op.get_bind()).get_unique_constraints("monitor_releases"):
        if found["column_names"] == columns and found["name"]:
            return str(found["name"])
    return _UNNAMED


def upgrade() -> None:
    old = _constraint(["watch_id", "log_index"])
    with op.batch_alter_table("monitor_releases", naming_convention=_NAMES) as batch:
        batch.add_column(sa.Column("image_index", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("image_count", sa.Integer(), server_default="1", nullable=False))
        batch.drop_constraint(old, type_="unique")
        batch.create_unique_constraint("uq_monitor_releases_image", ["watch_id", "log_index", "image_index"])
    # releases recorded until now have their first image only: each watch reads its log again from its
    # first release, and the monitor records the images missing (`Monitor._read_new`), then checks them
    op.execute(
        "UPDATE monitor_watches SET next_index ="
        " (SELECT MIN(r.log_index) FROM monitor_releases r WHERE r.watch_id = monitor_watches.id)"
        " WHERE EXISTS (SELECT 1 FROM monitor_releases r WHERE r.watch_id = monitor_watches.id)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM monitor_alerts WHERE release_id IN (SELECT id FROM monitor_releases WHERE image_index > 0)")
    op.execute(
        "UPDATE monitor_releases SET previous_id = NULL"
        " WHERE previous_id IN (SELECT id FROM monitor_releases WHERE image_index > 0)"
    )
    op.execute("DELETE FROM monitor_releases WHERE image_index > 0")
    with op.batch_alter_table("monitor_releases", naming_convention=_NAMES) as batch:
        batch.drop_constraint("uq_monitor_releases_image", type_="unique")
        batch.create_unique_constraint(_OLD_NAME, ["watch_id", "log_index"])
        batch.drop_column("image_count")
        batch.drop_column("image_index")
