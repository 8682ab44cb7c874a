"""Idempotency keys: the first answer to a create, kept so that a client's retry gets it again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Column, Field, SQLModel, Text

from herald_common.models.base import timestamp
from herald_common.timeutil import UTCDateTime

#: How long a first answer is replayed; the scheduler's clean-up drops older keys.
IDEMPOTENCY_TTL = timedelta(hours=24)


class IdempotencyKey(SQLModel, table=True):
    """One `Idempotency-Key` of one tenant: the request it was first sent with and, once that
    request has answered, its status and body. `status_code` is null while it is running."""

    __tablename__ = "idempotency_keys"

    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=36)
    key: str = Field(primary_key=True, max_length=255)
    #: SHA-256 of the method, path and body: the same key with another request is refused.
    fingerprint: str = Field(max_length=64)
    status_code: int | None = Field(default=None)
    response_body: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    location: str | None = Field(default=None, max_length=500)
    #: When the first request took the key: answers are kept 24 h from here.
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    completed_at: datetime | None = timestamp()
