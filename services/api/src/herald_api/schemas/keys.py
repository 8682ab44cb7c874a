"""Tenants and their API keys, as an operator manages them (admin keys)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald_api.schemas import Out


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


class KeyOut(Out):
    """An API key without its secret: only its public prefix is ever shown again."""

    id: str
    tenant_id: str
    name: str
    prefix: str = Field(description="The key's public handle: `hrld_<prefix>_…`.")
    is_admin: bool
    created_at: datetime
    revoked_at: datetime | None


class KeyList(Out):
    """API keys, newest first."""

    data: list[KeyOut]


class KeyListQuery(BaseModel):
    """Whose keys."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, max_length=36)


class KeyCreate(BaseModel):
    """A new key for a tenant."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(max_length=36)
    name: str = Field(default="default", min_length=1, max_length=200)
    is_admin: bool = False

    _name = field_validator("name")(_not_blank)


class IssuedKeyOut(KeyOut):
    """A key just made: `api_key` is its plaintext, shown this once (only a hash is kept)."""

    api_key: str


class TenantOut(Out):
    """A tenant and how many of its keys still work."""

    id: str
    name: str
    created_at: datetime
    active_keys: int
    admin_keys: int


class TenantList(Out):
    """Every tenant, newest first."""

    data: list[TenantOut]


class TenantCreate(BaseModel):
    """A new tenant; its first key is made with it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    admin: bool = Field(default=False, description="Give the first key admin rights.")

    _name = field_validator("name")(_not_blank)


class TenantCreatedOut(Out):
    """The tenant made, and its first key in plaintext (shown this once)."""

    tenant_id: str
    key: IssuedKeyOut
