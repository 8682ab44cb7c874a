"""Brands: a tenant's voice, look and defaults, used by content, images and approvals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class Brand(SQLModel, table=True):
    """One brand of a tenant.

    `colors` maps roles to `#rrggbb` (primary, secondary, accent, background, text); `fonts`
    maps roles to font names (heading, body); `approvers` lists who may approve its posts
    (`{"name", "email", "phone"}`, at least one of email and phone).
    """

    __tablename__ = "brands"
    __table_args__ = (Index("ix_brands_tenant_created", "tenant_id", "created_at", "id"),)

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_column=Column(Text))
    tone: str | None = Field(default=None, max_length=200)
    topics: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    hashtags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    colors: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    fonts: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    timezone: str = Field(default="UTC", max_length=64)
    default_account_ids: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    requires_approval: bool = Field(default=False)
    approvers: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    # email, whatsapp, webhook, both (email + whatsapp) or all (the three).
    notification_type: str = Field(default="email", max_length=16)
    webhook_url: str | None = Field(default=None, max_length=2000)
    version: int = Field(default=1)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    updated_at: datetime = timestamp(nullable=False, default_now=True)
