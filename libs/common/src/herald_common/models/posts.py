"""Posts, their targets (post × account) and each publish attempt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field, SQLModel, UniqueConstraint

from herald_common.models.base import id_field, timestamp


class PostStatus(StrEnum):
    """A post's state; once scheduled it is derived from its targets."""

    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    PARTIALLY_PUBLISHED = "partially_published"
    FAILED = "failed"
    CANCELED = "canceled"


class TargetStatus(StrEnum):
    """A target's state in the exactly-once protocol."""

    DRAFT = "draft"  # its post is not scheduled
    SCHEDULED = "scheduled"  # waiting for due_at
    QUEUED = "queued"  # claimed by the scheduler, a publish message is on its way
    PUBLISHING = "publishing"  # a worker claimed it and is talking to the platform
    RETRYING = "retrying"  # failed in a way worth retrying; waits for due_at again
    PUBLISHED = "published"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the worker died mid-call and the platform cannot be asked
    CANCELED = "canceled"


#: States in which a target still has work ahead of it.
ACTIVE_TARGET_STATES = frozenset(
    {TargetStatus.SCHEDULED, TargetStatus.QUEUED, TargetStatus.PUBLISHING, TargetStatus.RETRYING}
)

#: States the scheduler dispatches from when due_at has come.
DISPATCHABLE_TARGET_STATES = (TargetStatus.SCHEDULED, TargetStatus.RETRYING)


class AttemptOutcome(StrEnum):
    """How one publish attempt ended."""

    PUBLISHED = "published"
    RETRYABLE = "retryable"
    NEEDS_AUTH = "needs_auth"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


class Post(SQLModel, table=True):
    """What to say, and when; published to each of its targets."""

    __tablename__ = "posts"
    __table_args__ = (
        Index("ix_posts_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_posts_tenant_status", "tenant_id", "status"),
        # A generation job makes each of its posts once, however often it runs.
        UniqueConstraint("source_job_id", "source_index", name="uq_posts_source"),
    )

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    content: str = Field(sa_column=Column(Text, nullable=False))
    media: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    status: str = Field(default=PostStatus.DRAFT, max_length=32)
    scheduled_at: datetime | None = timestamp()
    timezone: str | None = Field(default=None, max_length=64)
    # Bumped on every edit, reschedule and cancel: older messages then find nothing to do.
    version: int = Field(default=1)
    created_at: datetime = timestamp(nullable=False, default_now=True)
    updated_at: datetime = timestamp(nullable=False, default_now=True)
    published_at: datetime | None = timestamp()
    brand_id: str | None = Field(
        default=None, foreign_key="brands.id", index=True, max_length=36, ondelete="SET NULL"
    )
    # The parts a writer made (hook, body, hashtags), so one can be regenerated alone;
    # `content` is always their composition. Empty for posts written by hand.
    parts: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    # When a generated draft is meant to go out (in its brand's timezone); a draft is not
    # scheduled until someone schedules it or its approval does.
    suggested_at: datetime | None = timestamp()
    source_job_id: str | None = Field(default=None, max_length=36)
    source_index: int | None = None


class Target(SQLModel, table=True):
    """One post to one account: the unit the scheduler dispatches and the publisher claims."""

    __tablename__ = "targets"
    __table_args__ = (
        UniqueConstraint("post_id", "account_id", name="uq_targets_post_account"),
        # The scheduler's queries read only these partial indexes, so their cost follows
        # what is due (or stuck), never the size of the future schedule.
        Index(
            "ix_targets_dispatchable",
            "due_at",
            postgresql_where=text("status IN ('scheduled', 'retrying')"),
            sqlite_where=text("status IN ('scheduled', 'retrying')"),
        ),
        Index(
            "ix_targets_queued",
            "queued_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        Index(
            "ix_targets_publishing",
            "started_at",
            postgresql_where=text("status = 'publishing'"),
            sqlite_where=text("status = 'publishing'"),
        ),
        # The scheduler counts these for its gauges (herald_targets{status}).
        Index(
            "ix_targets_retrying",
            "due_at",
            postgresql_where=text("status = 'retrying'"),
            sqlite_where=text("status = 'retrying'"),
        ),
        # The scheduler's analytics pulls read this one.
        Index(
            "ix_targets_metrics_due",
            "metrics_due_at",
            postgresql_where=text("status = 'published'"),
            sqlite_where=text("status = 'published'"),
        ),
        # A client's analytics pull: a tenant's published targets by publish time.
        Index(
            "ix_targets_published",
            "tenant_id",
            "published_at",
            postgresql_where=text("status = 'published'"),
            sqlite_where=text("status = 'published'"),
        ),
        # The operator's console lists failed targets, newest first (written only on failure).
        Index(
            "ix_targets_failed",
            "finished_at",
            postgresql_where=text("status = 'failed'"),
            sqlite_where=text("status = 'failed'"),
        ),
        Index(
            "ix_targets_unknown",
            "updated_at",
            postgresql_where=text("status = 'unknown'"),
            sqlite_where=text("status = 'unknown'"),
        ),
    )

    id: str = id_field()
    # Read by tenant only for a client's analytics pull: ix_targets_published.
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)
    # Looked up through uq_targets_post_account, whose leading column it is.
    post_id: str = Field(foreign_key="posts.id", max_length=36, ondelete="CASCADE")
    account_id: str = Field(foreign_key="accounts.id", index=True, max_length=36)
    platform: str = Field(max_length=32)
    status: str = Field(default=TargetStatus.DRAFT, max_length=32)
    version: int = Field(default=1)
    # When the scheduler should next send it: the post's time, or the next retry's.
    due_at: datetime | None = timestamp()
    queued_at: datetime | None = timestamp()
    started_at: datetime | None = timestamp()
    finished_at: datetime | None = timestamp()
    attempt_count: int = Field(default=0)
    platform_post_id: str | None = Field(default=None, max_length=200)
    platform_url: str | None = Field(default=None, max_length=1000)
    error_kind: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, sa_column=Column(Text))
    published_at: datetime | None = timestamp()
    updated_at: datetime = timestamp(nullable=False, default_now=True)
    # What a try left on the platform for the next one (see PublishRequest.checkpoint).
    checkpoint: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}")
    )
    # When the scheduler should next pull this published target's metrics (None: no more).
    metrics_due_at: datetime | None = timestamp()
    metrics_pulls: int = Field(default=0)
    # The API request that last put it on the schedule: its publish messages carry it, so the
    # worker's lines and the attempt name it (herald_common.logs).
    request_id: str | None = Field(default=None, max_length=64)


class Attempt(SQLModel, table=True):
    """One try at publishing a target: the audit trail of what happened and when."""

    __tablename__ = "attempts"

    id: str = id_field()
    tenant_id: str = Field(foreign_key="tenants.id", max_length=36)  # attempts are read by target
    target_id: str = Field(foreign_key="targets.id", index=True, max_length=36, ondelete="CASCADE")
    number: int
    due_at: datetime | None = timestamp()
    started_at: datetime = timestamp(nullable=False, default_now=True)
    finished_at: datetime | None = timestamp(index=True)
    lateness_seconds: float | None = None
    outcome: str | None = Field(default=None, max_length=32)
    http_status: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    duration_ms: float | None = None
    # The API request whose message ran this try (see Target.request_id).
    request_id: str | None = Field(default=None, max_length=64)
