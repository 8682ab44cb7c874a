"""Jobs a client started (content, images, analytics pulls): state, progress and result.

The row is the job's record, written in the transaction that accepts the request; the queue
message only carries its id. A lost message or a worker that died is found by the scheduler
(`herald_common.jobs.resend_stale`) and sent again; the claim lets one run at a time.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from herald_common.models.base import id_field, timestamp


class JobStatus(StrEnum):
    """Where a job is."""

    QUEUED = "queued"  # accepted, waiting for a worker (or for a retry)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(SQLModel, table=True):
    """One piece of background work a client asked for."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        # A tenant's jobs in flight, counted against its limit per queue when one is started.
        Index(
            "ix_jobs_tenant_active",
            "tenant_id",
            "kind",
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
        Index(
            "ix_jobs_queued",
            "queued_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_jobs_running",
            "started_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
    )

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    kind: str = Field(max_length=64)  # the contract's job name, e.g. content.generate.monthly
    status: str = Field(default=JobStatus.QUEUED, max_length=16)
    # The message's keyword arguments (ids and small values, never secrets).
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    progress: int = Field(default=0)
    total: int | None = None
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    # Runs started; a run that fails while runs are left goes back to queued.
    attempts: int = Field(default=0)
    brand_id: str | None = Field(default=None, max_length=36)
    post_id: str | None = Field(default=None, max_length=36)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    updated_at: datetime = timestamp(nullable=False, default_now=True)
    # When its message was last sent (the scheduler sends again one lost for too long).
    queued_at: datetime | None = timestamp()
    started_at: datetime | None = timestamp()
    finished_at: datetime | None = timestamp()
