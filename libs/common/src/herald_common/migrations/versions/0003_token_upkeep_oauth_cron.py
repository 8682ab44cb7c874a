"""token upkeep on accounts, OAuth flows under way, cron firings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import herald_common.timeutil

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TIME = herald_common.timeutil.UTCDateTime(timezone=True)


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_expires_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("refresh_due_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("refresh_queued_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("refresh_started_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("refreshed_at", _TIME, nullable=True))
        batch_op.add_column(
            sa.Column("refresh_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("refresh_error", _string(1000), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_accounts_token_expires_at"), ["token_expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_accounts_refresh_due_at"), ["refresh_due_at"], unique=False
        )

    op.create_table(
        "oauth_states",
        sa.Column("state_hash", _string(64), nullable=False),
        sa.Column("tenant_id", _string(36), nullable=False),
        sa.Column("platform", _string(32), nullable=False),
        sa.Column("account_id", _string(36), nullable=True),
        sa.Column("redirect_uri", _string(1000), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("used_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oauth_states_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "cron_runs",
        sa.Column("name", _string(100), nullable=False),
        sa.Column("fire_at", _TIME, nullable=False),
        sa.Column("fired_by", _string(200), nullable=False),
        sa.Column("fired_at", _TIME, nullable=False),
        sa.Column("result", _string(1000), nullable=True),
        sa.PrimaryKeyConstraint("name", "fire_at"),
    )


def downgrade() -> None:
    op.drop_table("cron_runs")
    with op.batch_alter_table("oauth_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_states_tenant_id"))
    op.drop_table("oauth_states")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_refresh_due_at"))
        batch_op.drop_index(batch_op.f("ix_accounts_token_expires_at"))
        for column in (
            "refresh_error",
            "refresh_failures",
            "refreshed_at",
            "refresh_started_at",
            "refresh_queued_at",
            "refresh_due_at",
            "token_expires_at",
        ):
            batch_op.drop_column(column)
