"""Cron firings: one row per entry and fire time, so each firing happens once."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Column, Field, SQLModel

from herald_common.models.base import timestamp
from herald_common.timeutil import UTCDateTime


class CronRun(SQLModel, table=True):
    """A cron entry fired at a time. The primary key makes a second scheduler's insert fail."""

    __tablename__ = "cron_runs"

    name: str = Field(primary_key=True, max_length=100)
    fire_at: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    #: Which scheduler fired it (host:pid), for people reading the table.
    fired_by: str = Field(max_length=200)
    fired_at: datetime = timestamp(nullable=False, default_now=True)
    #: What the run did, in a few words (or why it failed).
    result: str | None = Field(default=None, max_length=1000)
