"""the operator's console: its sessions, and failed targets by when they failed

- `console_sessions`: one row per signed-in browser, found by the SHA-256 of its cookie and
  tied to the admin key it was opened with (deleted with the key's row; a revoked key's
  sessions are refused on their next request);
- `ix_targets_failed`: the console lists failed targets newest first across tenants; a partial
  index is written only when a target fails, so the publish path pays nothing for it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import herald_common.timeutil

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TIME = herald_common.timeutil.UTCDateTime(timezone=True)
_FAILED = sa.text("status = 'failed'")


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", _string(64), nullable=False),
        sa.Column("key_id", _string(36), nullable=False),
        sa.Column("csrf_token", _string(64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_console_sessions_key_id", "console_sessions", ["key_id"])
    op.create_index(
        "ix_targets_failed",
        "targets",
        ["finished_at"],
        postgresql_where=_FAILED,
        sqlite_where=_FAILED,
    )


def downgrade() -> None:
    op.drop_index("ix_targets_failed", table_name="targets")
    op.drop_index("ix_console_sessions_key_id", table_name="console_sessions")
    op.drop_table("console_sessions")
