"""Outcome webhooks: the endpoints apps register, and each event's delivery to each of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class WebhookEndpoint(SQLModel, table=True):
    """A URL of a tenant's app and the event types it wants. An endpoint whose deliveries kept
    failing is disabled with the reason; the tenant turns it back on."""

    __tablename__ = "webhook_endpoints"

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    url: str = Field(max_length=2000)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = Field(default=True)
    disabled_reason: str | None = Field(default=None, max_length=1000)
    disabled_at: datetime | None = timestamp()
    created_at: datetime = timestamp(nullable=False, default_now=True)
    updated_at: datetime = timestamp(nullable=False, default_now=True)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: `pending` until a try succeeds (`succeeded`) or every try
    over WEBHOOK_RETRY_SECONDS failed (`failed`). `next_attempt_at` is the schedule; `history`
    holds each try (when, HTTP status, error, duration)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One delivery per event and endpoint: an event emitted twice (two targets settling a
        # post at once) is delivered once.
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    endpoint_id: str = Field(foreign_key="webhook_endpoints.id", max_length=36)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=64)
    #: The event as sent: {"id", "type", "created_at", "data"}.
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = timestamp()
    #: Retries stop after this (set when the event is emitted, and again on a resend).
    retry_until: datetime = timestamp(nullable=False, default_now=True)
    history: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    delivered_at: datetime | None = timestamp()
