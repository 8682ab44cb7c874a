"""brands, jobs, approvals and their notices, images, metric snapshots; posts' brand and parts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import herald_common.timeutil

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIME = herald_common.timeutil.UTCDateTime(timezone=True)


def _string(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _where(status: str) -> dict[str, sa.TextClause]:
    clause = sa.text(f"status = '{status}'")
    return {"postgresql_where": clause, "sqlite_where": clause}


def upgrade() -> None:
    op.create_table(
        "brands",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("tenant_id", _string(36), nullable=False),
        sa.Column("name", _string(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tone", _string(200), nullable=True),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("hashtags", sa.JSON(), nullable=False),
        sa.Column("colors", sa.JSON(), nullable=False),
        sa.Column("fonts", sa.JSON(), nullable=False),
        sa.Column("timezone", _string(64), nullable=False),
        sa.Column("default_account_ids", sa.JSON(), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("notification_type", _string(16), nullable=False),
        sa.Column("webhook_url", _string(2000), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_brands_tenant_created", "brands", ["tenant_id", "created_at", "id"])

    op.create_table(
        "images",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("tenant_id", _string(36), nullable=False),
        sa.Column("job_id", _string(36), nullable=True),
        sa.Column("brand_id", _string(36), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("style", _string(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("media_type", _string(64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", _string(64), nullable=False),
        sa.Column("renderer", _string(32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.Column("storage_key", _string(500), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index("ix_images_tenant_created", "images", ["tenant_id", "created_at", "id"])

    op.create_table(
        "jobs",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("tenant_id", _string(36), nullable=False),
        sa.Column("kind", _string(64), nullable=False),
        sa.Column("status", _string(16), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("brand_id", _string(36), nullable=True),
        sa.Column("post_id", _string(36), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("queued_at", _TIME, nullable=True),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_jobs_queued", "jobs", ["queued_at"], **_where("queued"))
    op.create_index("ix_jobs_running", "jobs", ["started_at"], **_where("running"))
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant_id", "created_at", "id"])

    op.create_table(
        "approvals",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("tenant_id", _string(36), nullable=False),
        sa.Column("post_id", _string(36), nullable=False),
        sa.Column("status", _string(16), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("notification_type", _string(16), nullable=False),
        sa.Column("webhook_url", _string(2000), nullable=True),
        sa.Column("due_at", _TIME, nullable=True),
        sa.Column("scheduled_at", _TIME, nullable=True),
        sa.Column("timezone", _string(64), nullable=True),
        sa.Column("requested_by", _string(320), nullable=True),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("reminded_at", _TIME, nullable=True),
        sa.Column("overdue_at", _TIME, nullable=True),
        sa.Column("decided_by", _string(320), nullable=True),
        sa.Column("decided_at", _TIME, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["post_id"], ["posts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approvals_pending_due", "approvals", ["due_at"], **_where("pending"))
    op.create_index("ix_approvals_post", "approvals", ["post_id", "requested_at"])
    op.create_index("ix_approvals_tenant_id", "approvals", ["tenant_id"])

    op.create_table(
        "approval_notices",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("tenant_id", _string(36), nullable=False),
        sa.Column("approval_id", _string(36), nullable=False),
        sa.Column("kind", _string(16), nullable=False),
        sa.Column("channel", _string(16), nullable=False),
        sa.Column("recipient", _string(2000), nullable=False),
        sa.Column("status", _string(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("provider_id", _string(200), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["approval_id"], ["approvals.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "approval_id", "kind", "channel", "recipient", name="uq_approval_notices_once"
        ),
    )
    op.create_index("ix_approval_notices_approval_id", "approval_notices", ["approval_id"])

    op.create_table(
        "metric_snapshots",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("tenant_id", _string(36), nullable=False),
        sa.Column("target_id", _string(36), nullable=False),
        sa.Column("post_id", _string(36), nullable=False),
        sa.Column("account_id", _string(36), nullable=False),
        sa.Column("platform", _string(32), nullable=False),
        sa.Column("taken_at", _TIME, nullable=False),
        sa.Column("likes", sa.Integer(), nullable=True),
        sa.Column("reposts", sa.Integer(), nullable=True),
        sa.Column("replies", sa.Integer(), nullable=True),
        sa.Column("quotes", sa.Integer(), nullable=True),
        sa.Column("views", sa.Integer(), nullable=True),
        sa.Column("impressions", sa.Integer(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["target_id"], ["targets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_metric_snapshots_target_taken", "metric_snapshots", ["target_id", "taken_at"]
    )
    op.create_index(
        "ix_metric_snapshots_tenant_taken", "metric_snapshots", ["tenant_id", "taken_at"]
    )

    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("brand_id", _string(36), nullable=True))
        batch_op.add_column(sa.Column("parts", sa.JSON(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("suggested_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("source_job_id", _string(36), nullable=True))
        batch_op.add_column(sa.Column("source_index", sa.Integer(), nullable=True))
        batch_op.create_index("ix_posts_brand_id", ["brand_id"], unique=False)
        batch_op.create_unique_constraint("uq_posts_source", ["source_job_id", "source_index"])
        batch_op.create_foreign_key(
            "fk_posts_brand_id", "brands", ["brand_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metrics_due_at", _TIME, nullable=True))
        batch_op.add_column(
            sa.Column("metrics_pulls", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index("ix_targets_metrics_due", "targets", ["metrics_due_at"], **_where("published"))


def downgrade() -> None:
    op.drop_index("ix_targets_metrics_due", table_name="targets")
    with op.batch_alter_table("targets", schema=None) as batch_op:
        batch_op.drop_column("metrics_pulls")
        batch_op.drop_column("metrics_due_at")
    with op.batch_alter_table("posts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_posts_brand_id", type_="foreignkey")
        batch_op.drop_constraint("uq_posts_source", type_="unique")
        batch_op.drop_index("ix_posts_brand_id")
        for column in ("source_index", "source_job_id", "suggested_at", "parts", "brand_id"):
            batch_op.drop_column(column)
    for table in ("metric_snapshots", "approval_notices", "approvals", "jobs", "images", "brands"):
        op.drop_table(table)
