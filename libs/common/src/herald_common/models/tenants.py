"""Tenants (organizations) and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class Tenant(SQLModel, table=True):
    """An organization; every other row belongs to exactly one."""

    __tablename__ = "tenants"

    id: str = id_field()
    name: str = Field(max_length=200)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    #: Requests per API key, in the `limits` package's notation ("600/minute", "10/second;
    #: 600/minute"); null: the API_RATE_LIMIT setting.
    rate_limit: str | None = Field(default=None, max_length=100)
    #: Jobs queued or running per shared queue (content, image, analytics); null: the
    #: MAX_ACTIVE_JOBS_PER_TENANT setting.
    max_active_jobs: int | None = Field(default=None)


class ApiKey(SQLModel, table=True):
    """A bearer key of one tenant; only its SHA-256 is stored, found by its public prefix."""

    __tablename__ = "api_keys"

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    name: str = Field(default="default", max_length=200)
    prefix: str = Field(unique=True, max_length=32)
    key_hash: str = Field(max_length=64)
    is_admin: bool = Field(default=False)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    revoked_at: datetime | None = timestamp()
