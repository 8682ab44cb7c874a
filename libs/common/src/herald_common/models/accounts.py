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
    # Token upkeep (herald_common.tokens). The expiry is kept in the clear, beside the sealed
    # secrets, so the scheduler can find tokens about to expire without opening them.
    token_expires_at: datetime | None = timestamp(index=True)
    #: A refresh is wanted at or after this time (asked by a person, the weekly run, a 401, or
    #: a backoff after a failure); None: only when the token nears its expiry.
    refresh_due_at: datetime | None = timestamp(index=True)
    #: When the scheduler sent the refresh message (a lost message is sent again after a while).
    refresh_queued_at: datetime | None = timestamp()
    #: When the refresh now running started: the lease that keeps a second one from starting.
    refresh_started_at: datetime | None = timestamp()
    refreshed_at: datetime | None = timestamp()
    refresh_failures: int = Field(default=0)
    refresh_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    updated_at: datetime = timestamp(nullable=False, default_now=True)
    deleted_at: datetime | None = timestamp()

    @property
    def has_credentials(self) -> bool:
        """Whether secrets are stored for this account."""
        return bool(self.credentials)


class OAuthState(SQLModel, table=True):
    """One authorization-code flow under way: what the callback needs to finish it.

    Only the SHA-256 of `state` is kept; the PKCE verifier is sealed like credentials. A row is
    used once and is good for Settings.oauth_state_ttl_seconds.
    """

    __tablename__ = "oauth_states"

    state_hash: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    platform: str = Field(max_length=32)
    #: The account being connected again, when re-auth started from one.
    account_id: str | None = Field(default=None, max_length=36)
    redirect_uri: str = Field(max_length=1000)
    code_verifier: str | None = Field(default=None, sa_column=Column(Text), repr=False)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    expires_at: datetime = timestamp(nullable=False)
    used_at: datetime | None = timestamp()
