"""Approval requests of posts, and each notice sent to an approver."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class ApprovalStatus(StrEnum):
    """Where an approval request is."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # the post was edited, canceled or deleted while it waited


class Approval(SQLModel, table=True):
    """A post submitted for approval: who may decide, by when, and what they decided."""

    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_post", "post_id", "requested_at"),
        Index(
            "ix_approvals_pending_due",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    post_id: str = Field(foreign_key="posts.id", max_length=36, ondelete="CASCADE")
    status: str = Field(default=ApprovalStatus.PENDING, max_length=16)
    # [{"name", "email", "phone"}]: only these may approve or reject.
    approvers: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    notification_type: str = Field(default="email", max_length=16)
    webhook_url: str | None = Field(default=None, max_length=2000)
    # When it should be decided by; past it the request is flagged overdue (never published).
    due_at: datetime | None = timestamp()
    # When the post should go out once approved (None: it stays approved, unscheduled).
    scheduled_at: datetime | None = timestamp()
    timezone: str | None = Field(default=None, max_length=64)
    requested_by: str | None = Field(default=None, max_length=320)
    requested_at: datetime = timestamp(nullable=False, default_now=True)
    reminded_at: datetime | None = timestamp()
    overdue_at: datetime | None = timestamp()
    decided_by: str | None = Field(default=None, max_length=320)
    decided_at: datetime | None = timestamp()
    comment: str | None = Field(default=None, sa_column=Column(Text))
    updated_at: datetime = timestamp(nullable=False, default_now=True)


class ApprovalNotice(SQLModel, table=True):
    """One message to one approver on one channel; sent at most once per kind."""

    __tablename__ = "approval_notices"
    __table_args__ = (
        UniqueConstraint(
            "approval_id", "kind", "channel", "recipient", name="uq_approval_notices_once"
        ),
    )

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    approval_id: str = Field(
        foreign_key="approvals.id", index=True, max_length=36, ondelete="CASCADE"
    )
    kind: str = Field(max_length=16)  # request, reminder
    channel: str = Field(max_length=16)  # email, whatsapp, webhook
    recipient: str = Field(max_length=2000)
    status: str = Field(default="sending", max_length=16)  # sending, sent, failed
    error: str | None = Field(default=None, sa_column=Column(Text))
    provider_id: str | None = Field(default=None, max_length=200)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    sent_at: datetime | None = timestamp()
