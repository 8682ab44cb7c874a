"""What the built-in sandbox platform was sent (it stands in for a platform's own store)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel, UniqueConstraint

from herald_common.models.base import id_field, timestamp


class SandboxDelivery(SQLModel, table=True):
    """One call to the sandbox platform: a post it accepted, or a failure it was told to give."""

    __tablename__ = "sandbox_deliveries"
    __table_args__ = (
        # Like Mastodon's Idempotency-Key: one accepted post per key and account.
        UniqueConstraint("account_id", "accepted_key", name="uq_sandbox_accepted_key"),
    )

    id: str = id_field()
    tenant_id: str = Field(max_length=36)  # read by account, through uq_sandbox_accepted_key
    account_id: str = Field(max_length=36)  # looked up through uq_sandbox_accepted_key
    idempotency_key: str = Field(index=True, max_length=200)
    # Equal to idempotency_key on accepted posts, NULL on failed calls (NULLs never collide).
    accepted_key: str | None = Field(default=None, max_length=200)
    outcome: str = Field(max_length=32)
    content: str
    error: str | None = None
    created_at: datetime = timestamp(nullable=False, default_now=True)
