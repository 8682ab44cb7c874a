"""fewer indexes written on the publish path

Every full index on `targets` is written on each of the three updates a published target goes
through (its status is in the partial indexes' conditions, so none of them is a HOT update),
and every index of `attempts` and `sandbox_deliveries` once per publish:

- `ix_targets_post_id` repeats the leading column of `uq_targets_post_account`, which serves the
  same lookups; likewise `ix_sandbox_deliveries_account_id` and `uq_sandbox_accepted_key`;
- `ix_targets_tenant_id` served one query, a client's analytics pull (a tenant's published
  targets by publish time): `ix_targets_published` serves it better and is written only when a
  target is published;
- `ix_attempts_tenant_id` and `ix_sandbox_deliveries_tenant_id` served no query (attempts are
  read by target, deliveries by account).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


_PUBLISHED = sa.text("status = 'published'")


def upgrade() -> None:
    op.drop_index("ix_targets_post_id", table_name="targets")
    op.drop_index("ix_targets_tenant_id", table_name="targets")
    op.create_index(
        "ix_targets_published",
        "targets",
        ["tenant_id", "published_at"],
        postgresql_where=_PUBLISHED,
        sqlite_where=_PUBLISHED,
    )
    op.drop_index("ix_attempts_tenant_id", table_name="attempts")
    op.drop_index("ix_sandbox_deliveries_account_id", table_name="sandbox_deliveries")
    op.drop_index("ix_sandbox_deliveries_tenant_id", table_name="sandbox_deliveries")


def downgrade() -> None:
    op.create_index("ix_sandbox_deliveries_tenant_id", "sandbox_deliveries", ["tenant_id"])
    op.create_index("ix_sandbox_deliveries_account_id", "sandbox_deliveries", ["account_id"])
    op.create_index("ix_attempts_tenant_id", "attempts", ["tenant_id"])
    op.drop_index("ix_targets_published", table_name="targets")
    op.create_index("ix_targets_tenant_id", "targets", ["tenant_id"])
    op.create_index("ix_targets_post_id", "targets", ["post_id"])
