"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 22:12:11.062949
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import herald_common.timeutil

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_deliveries",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("accepted_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("content", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "accepted_key", name="uq_sandbox_accepted_key"),
    )
    with op.batch_alter_table("sandbox_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sandbox_deliveries_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sandbox_deliveries_idempotency_key"), ["idempotency_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sandbox_deliveries_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "tenants",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("handle", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("created_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("prefix", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("key_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prefix"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "posts",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("scheduled_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_posts_tenant_created", ["tenant_id", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_posts_tenant_status", ["tenant_id", "status"], unique=False)

    op.create_table(
        "targets",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("post_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("due_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("queued_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("platform_post_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("platform_url", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("error_kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("published_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("post_id", "account_id", name="uq_targets_post_account"),
    )
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_targets_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            "ix_targets_dispatchable",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('scheduled', 'retrying')"),
            sqlite_where=sa.text("status IN ('scheduled', 'retrying')"),
        )
        batch_op.create_index(batch_op.f("ix_targets_post_id"), ["post_id"], unique=False)
        batch_op.create_index(
            "ix_targets_publishing",
            ["started_at"],
            unique=False,
            postgresql_where=sa.text("status = 'publishing'"),
            sqlite_where=sa.text("status = 'publishing'"),
        )
        batch_op.create_index(
            "ix_targets_queued",
            ["queued_at"],
            unique=False,
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )
        batch_op.create_index(batch_op.f("ix_targets_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "attempts",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("target_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", herald_common.timeutil.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lateness_seconds", sa.Float(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["target_id"], ["targets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attempts_finished_at"), ["finished_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_attempts_target_id"), ["target_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attempts_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempts_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_attempts_target_id"))
        batch_op.drop_index(batch_op.f("ix_attempts_finished_at"))

    op.drop_table("attempts")
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_targets_tenant_id"))
        batch_op.drop_index(
            "ix_targets_queued",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )
        batch_op.drop_index(
            "ix_targets_publishing",
            postgresql_where=sa.text("status = 'publishing'"),
            sqlite_where=sa.text("status = 'publishing'"),
        )
        batch_op.drop_index(batch_op.f("ix_targets_post_id"))
        batch_op.drop_index(
            "ix_targets_dispatchable",
            postgresql_where=sa.text("status IN ('scheduled', 'retrying')"),
            sqlite_where=sa.text("status IN ('scheduled', 'retrying')"),
        )
        batch_op.drop_index(batch_op.f("ix_targets_account_id"))

    op.drop_table("targets")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_index("ix_posts_tenant_status")
        batch_op.drop_index("ix_posts_tenant_created")

    op.drop_table("posts")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_tenant_id"))

    op.drop_table("accounts")
    op.drop_table("tenants")
    with op.batch_alter_table("sandbox_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sandbox_deliveries_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_sandbox_deliveries_idempotency_key"))
        batch_op.drop_index(batch_op.f("ix_sandbox_deliveries_account_id"))

    op.drop_table("sandbox_deliveries")
