"""Column helpers shared by the models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Column, Field

from herald_common.timeutil import UTCDateTime, utcnow


def new_id() -> str:
    """A new random primary key."""
    return str(uuid.uuid4())


def id_field() -> Any:
    """A UUID string primary key."""
    return Field(default_factory=new_id, primary_key=True, max_length=36)


def timestamp(*, nullable: bool = True, default_now: bool = False, index: bool = False) -> Any:
    """A UTC timestamp column."""
    column = Column(UTCDateTime(), nullable=nullable, index=index)
    if default_now:
        return Field(default_factory=utcnow, sa_column=column)
    return Field(default=None, sa_column=column)


__all__ = ["datetime", "id_field", "new_id", "timestamp"]
