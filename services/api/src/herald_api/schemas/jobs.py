"""Jobs a client started, and the admin's test jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from herald_api.schemas import Out
from herald_common.models import JobStatus


class JobOut(Out):
    """A background job: where it is, how far, and what it made or why it failed."""

    id: str
    kind: str = Field(description="e.g. `content.generate.monthly`, `image.generate`.")
    status: JobStatus
    progress: int = Field(description="Units done (posts written, targets pulled…).")
    total: int | None = Field(description="Units in all, when known.")
    result: dict[str, Any] | None = Field(description="What it made, once it succeeded.")
    error: str | None = Field(
        description="Why it failed; while queued after a failed try, what went wrong."
    )
    attempts: int
    brand_id: str | None
    post_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class JobPage(Out):
    """One page of jobs, newest first."""

    data: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class JobListQuery(BaseModel):
    """Query parameters of the job list."""

    model_config = ConfigDict(extra="ignore")

    kind: str | None = Field(default=None, max_length=64)
    status: JobStatus | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


TestJobName = Literal[
    "content.generate.monthly",
    "content.regen.single",
    "approval.notify",
    "analytics.pull",
    "image.generate",
]


class TestJobOut(Out):
    """A test job, enqueued."""

    job_name: str
    queue: str
    actor_name: str
    message_id: str
    job_id: str | None = Field(
        description="For jobs that keep a record (content, images, analytics): read it at "
        "/v1/jobs/{job_id}."
    )
