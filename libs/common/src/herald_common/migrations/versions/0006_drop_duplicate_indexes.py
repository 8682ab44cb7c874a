"""drop indexes that repeat the leading column of a unique one

Every index on `targets` is written on each of the three updates a published target goes
through (its status is in the partial indexes' conditions, so none of them is a HOT update):
`ix_targets_post_id` repeats the leading column of `uq_targets_post_account`, which serves the
same lookups. Likewise `ix_sandbox_deliveries_account_id` and `uq_sandbox_accepted_key`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_targets_post_id", table_name="targets")
    op.drop_index("ix_sandbox_deliveries_account_id", table_name="sandbox_deliveries")


def downgrade() -> None:
    op.create_index("ix_sandbox_deliveries_account_id", "sandbox_deliveries", ["account_id"])
    op.create_index("ix_targets_post_id", "targets", ["post_id"])
