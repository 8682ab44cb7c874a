"""partial indexes on retrying and unknown targets, for the scheduler's gauges

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name, column, status in (
        ("ix_targets_retrying", "due_at", "retrying"),
        ("ix_targets_unknown", "updated_at", "unknown"),
    ):
        where = sa.text(f"status = '{status}'")
        op.create_index(name, "targets", [column], postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    op.drop_index("ix_targets_unknown", table_name="targets")
    op.drop_index("ix_targets_retrying", table_name="targets")
