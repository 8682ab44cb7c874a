"""request ids on targets and attempts

The API request that put a target on the schedule (`targets.request_id`) travels in its publish
messages and is written on each try (`attempts.request_id`), so one id finds a post's whole
path: the API's lines, the worker's, and the audit trail. No index: they are read with their
rows, never searched by in the database (the logs are).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("targets") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("request_id")
    with op.batch_alter_table("targets") as batch:
        batch.drop_column("request_id")
