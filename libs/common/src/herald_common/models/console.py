"""Sign-ins to the operator's console: one row per session, found by the hash of its cookie."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from herald_common.models.base import timestamp


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the cookie's token is stored; the session is
    as good as the admin key it was opened with (revoking the key ends it)."""

    __tablename__ = "console_sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    key_id: str = Field(foreign_key="api_keys.id", index=True, max_length=36, ondelete="CASCADE")
    #: The synchronizer token every form of this session carries (compared in constant time).
    csrf_token: str = Field(max_length=64)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    expires_at: datetime = timestamp(nullable=False)
