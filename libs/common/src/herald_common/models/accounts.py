"""Connected social accounts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class AccountStatus(StrEnum):
    """Whether an account can be published to."""

    ACTIVE = "active"
    REFRESHING = "refreshing"
    NEEDS_REAUTH = "needs_reauth"
    DISCONNECTED = "disconnected"


class Account(SQLModel, table=True):
    """One connected account on one platform, owned by one tenant."""

    __tablename__ = "accounts"

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    platform: str = Field(max_length=32)
    handle: str = Field(max_length=200)
    external_id: str | None = Field(default=None, max_length=200)
    # Platform-specific, non-secret options (the sandbox's failure modes, an instance's limits).
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Tokens and passwords, encrypted (herald_common.crypto); never returned or logged.
    credentials: str | None = Field(default=None, sa_column=Column(Text), repr=False)
    status: str = Field(default=AccountStatus.ACTIVE, max_length=32)
    status_reason: str | None = Field(default=None, max_length=1000)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    updated_at: datetime = timestamp(nullable=False, default_now=True)
    deleted_at: datetime | None = timestamp()

    @property
    def has_credentials(self) -> bool:
        """Whether secrets are stored for this account."""
        return bool(self.credentials)
