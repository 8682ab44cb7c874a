"""Request and response bodies: pydantic models that both validate and document the API.

Request bodies are closed and strict (`extra="forbid", strict=True`) and are parsed from the raw
JSON, so `true` is never taken for 1 and ISO-8601 strings still become datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from herald_api.schemas.approvals import ApprovalOut
from herald_common.models import PostStatus
from herald_common.platforms import PLATFORMS

MAX_CONTENT_LENGTH = 10_000
MAX_ACCOUNTS_PER_POST = 50
# TikTok photo posts take 35 images, the most of any platform; each adapter checks its own limit.
MAX_MEDIA_PER_POST = 35


class Body(BaseModel):
    """Base of every request body: unknown fields and loose types are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    """Base of every response body; built from the database rows."""

    model_config = ConfigDict(from_attributes=True)


# --- errors -------------------------------------------------------------------------------


class FieldErrorOut(Out):
    """One broken rule."""

    field: str = Field(description="Dotted path of the field, e.g. `account_ids.1`.")
    reason: str
    rule: str | None = Field(
        default=None, description="For a platform's limit: the rule broken, e.g. `max_graphemes`."
    )
    account_id: str | None = Field(
        default=None, description="For a platform's limit: the account (target) it applies to."
    )


class ErrorDetail(Out):
    """What went wrong, in one shape for every error."""

    code: str = Field(description="Stable machine-readable code, e.g. `invalid_input`.")
    message: str
    fields: list[FieldErrorOut] = Field(default_factory=list)
    request_id: str | None = None


class ErrorResponse(Out):
    """The body of every error response."""

    error: ErrorDetail


# --- health ---------------------------------------------------------------------------------


class HealthOut(Out):
    """The process is alive."""

    status: Literal["ok"]


class ReadyOut(Out):
    """Whether the process can serve: its database, migrations and broker."""

    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unreachable"]
    migrations: Literal["current", "behind", "unknown"]
    broker: Literal["ok", "unreachable"]


# --- accounts -------------------------------------------------------------------------------


class AccountCreate(Body):
    """Connect an account."""

    platform: str = Field(
        description="One of: " + ", ".join(f"`{name}`" for name in PLATFORMS) + ". Each takes "
        "its own `settings` and `credentials` (see herald_common/platforms/<name>.py)."
    )
    handle: str = Field(min_length=1, max_length=200)
    external_id: str | None = Field(default=None, max_length=200)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Platform-specific, non-secret options."
    )
    credentials: dict[str, Any] | None = Field(
        default=None,
        description="Platform-specific secrets (tokens, app passwords). Encrypted at rest and "
        "never returned.",
    )


class AccountUpdate(Body):
    """Change an account's handle, settings or secrets."""

    handle: str | None = Field(default=None, min_length=1, max_length=200)
    settings: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = Field(
        default=None, description="Replaces the stored secrets as a whole."
    )


class AccountOut(Out):
    """A connected account."""

    id: str
    platform: str
    handle: str
    external_id: str | None
    settings: dict[str, Any]
    has_credentials: bool = Field(description="Whether secrets are stored (they are never shown).")
    status: str = Field(description="`active`, `refreshing`, `needs_reauth` or `disconnected`.")
    status_reason: str | None = Field(
        description="Why the account needs to be connected again (the platform's words)."
    )
    token_expires_at: datetime | None = Field(
        default=None, description="When the access token expires; null when it does not."
    )
    refreshed_at: datetime | None = Field(
        default=None, description="When the tokens were last stored or refreshed."
    )
    refresh_error: str | None = Field(
        default=None, description="Why the last refresh failed, while it is being retried."
    )
    created_at: datetime
    updated_at: datetime


class ConnectQuery(BaseModel):
    """Query parameters of starting an OAuth connect (strings from the URL, so not strict)."""

    model_config = ConfigDict(extra="ignore")
    account_id: str | None = Field(
        default=None,
        max_length=36,
        description="Reconnect this account (re-auth) instead of connecting a new one.",
    )


class ConnectStartOut(Out):
    """Where to send the user's browser to grant access."""

    platform: str
    authorize_url: str = Field(description="The platform's consent page, with state and PKCE.")
    state: str = Field(description="Ties the platform's callback to this request; used once.")
    redirect_uri: str = Field(description="The callback the platform returns to.")
    expires_at: datetime = Field(description="The flow must be finished by then.")


class DirectConnectBody(Body):
    """Credentials for platforms connected without OAuth.

    Bluesky: `handle` and an app password (Settings → Privacy and security → App passwords),
    optionally `service_url` for another PDS. Mastodon: `instance_url` and an access token
    with the `write:statuses write:media read:accounts` scopes.
    """

    handle: str | None = Field(default=None, min_length=1, max_length=253)
    app_password: str | None = Field(default=None, min_length=1, max_length=200)
    service_url: str | None = Field(default=None, max_length=300)
    instance_url: str | None = Field(default=None, max_length=300)
    access_token: str | None = Field(default=None, min_length=1, max_length=4000)
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Further non-secret options of the account."
    )


class AdminRefreshBody(Body):
    """Refresh one account, one tenant's accounts, or every account."""

    account_id: str | None = Field(default=None, max_length=36)
    tenant_id: str | None = Field(default=None, max_length=36)


class RefreshRequestedOut(Out):
    """How many accounts were asked to refresh (the token-refresher does it within seconds)."""

    requested: int


class AccountList(Out):
    """The tenant's accounts."""

    data: list[AccountOut]


class SandboxDeliveryOut(Out):
    """One call the sandbox platform received."""

    id: str
    idempotency_key: str
    outcome: str
    content: str
    error: str | None
    created_at: datetime


class SandboxDeliveryList(Out):
    """What the sandbox platform received for one account, newest first."""

    data: list[SandboxDeliveryOut]


# --- posts ------------------------------------------------------------------------------------


class MediaIn(Body):
    """An image or video attached to a post, fetched from its URL when the post goes out.

    Instagram, Threads and TikTok fetch the file themselves, so the URL must be reachable from
    the internet; for the other platforms Herald fetches it and uploads the bytes.
    """

    url: str = Field(max_length=2000, description="http(s) URL of the file.")
    kind: Literal["image", "video"] | None = Field(
        default=None, description="Derived from `mime_type` or the URL's extension when absent."
    )
    mime_type: str | None = Field(
        default=None, max_length=100, pattern=r"^[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+$"
    )
    alt: str | None = Field(
        default=None, max_length=1500, description="Alt text (Bluesky requires it; may be empty)."
    )
    size: int | None = Field(default=None, ge=1, description="Bytes, when known.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        return value


class PostCreate(Body):
    """Write a post: a draft, scheduled for a time, or published now."""

    content: str = Field(max_length=MAX_CONTENT_LENGTH)
    account_ids: list[str] = Field(min_length=1, max_length=MAX_ACCOUNTS_PER_POST)
    media: list[MediaIn] = Field(default_factory=list, max_length=MAX_MEDIA_PER_POST)
    scheduled_at: datetime | None = Field(
        default=None,
        description="With a UTC offset, or naive and read in `timezone`. Must be in the future.",
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA time zone name, e.g. `Europe/Paris`."
    )
    publish_now: bool = False
    brand_id: str | None = Field(
        default=None,
        max_length=36,
        description="The tenant's brand the post speaks for; a brand that requires approval "
        "keeps its posts off the schedule until approved.",
    )


class PostUpdate(Body):
    """Change a post that has not gone out yet. Absent fields are left as they are."""

    content: str | None = Field(default=None, max_length=MAX_CONTENT_LENGTH)
    account_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_ACCOUNTS_PER_POST
    )
    media: list[MediaIn] | None = Field(default=None, max_length=MAX_MEDIA_PER_POST)
    scheduled_at: datetime | None = None
    timezone: str | None = Field(default=None, max_length=64)
    status: Literal["draft"] | None = Field(
        default=None, description="`draft` takes the post off the schedule."
    )
    brand_id: str | None = Field(default=None, max_length=36)


class ScheduleBody(Body):
    """Schedule (or reschedule) a post."""

    scheduled_at: datetime
    timezone: str | None = Field(default=None, max_length=64)


class ResolveBody(Body):
    """A person's answer for a target in `unknown`: did the post go out?"""

    outcome: Literal["published", "not_published", "retry"] = Field(
        description="`published`: it is on the platform (give its URL or id); `not_published`: "
        "it is not, leave it failed; `retry`: it is not, send it now."
    )
    platform_url: str | None = Field(default=None, max_length=1000)
    platform_post_id: str | None = Field(default=None, min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=1000, description="Kept on the target.")

    @field_validator("platform_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http or https URL with a host")
        return value


class PostListQuery(BaseModel):
    """Query parameters of the post list (strings from the URL, so not strict)."""

    model_config = ConfigDict(extra="ignore")

    status: PostStatus | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


class AttemptOut(Out):
    """One try at publishing a target."""

    number: int
    due_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    lateness_seconds: float | None
    outcome: str | None
    http_status: int | None
    error: str | None
    duration_ms: float | None
    request_id: str | None = Field(
        default=None, description="The API request whose message ran this try (X-Request-ID)."
    )


class TargetOut(Out):
    """The post on one account."""

    id: str
    account_id: str
    platform: str
    status: str
    version: int
    due_at: datetime | None
    attempt_count: int
    platform_post_id: str | None
    platform_url: str | None
    error_kind: str | None
    error: str | None
    published_at: datetime | None
    updated_at: datetime
    request_id: str | None = Field(
        default=None,
        description="The API request that last put it on the schedule (X-Request-ID): the "
        "publisher's log lines and the attempts name it too.",
    )


class TargetDetailOut(TargetOut):
    """A target with its attempts."""

    attempts: list[AttemptOut]


class PostOut(Out):
    """A post and its targets."""

    id: str
    status: str
    content: str
    media: list[dict[str, Any]]
    scheduled_at: datetime | None
    timezone: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    brand_id: str | None = None
    parts: dict[str, Any] = Field(
        default_factory=dict,
        description="What a writer made: `hook`, `body` and `hashtags`, composed into `content`; "
        "empty for posts written by hand.",
    )
    suggested_at: datetime | None = Field(
        default=None, description="For a generated draft: when it is meant to go out."
    )
    approval: ApprovalOut | None = Field(
        default=None, description="The latest approval request, if it was ever submitted."
    )
    targets: list[TargetOut]


class PostDetailOut(PostOut):
    """A post, its targets and every target's attempts."""

    targets: list[TargetDetailOut]  # type: ignore[assignment]
    notices: list[str] = Field(
        default_factory=list,
        description="What this request did besides what it asked, in plain words: an edit "
        "of the text, media or brand withdraws the post's approval request, pending or "
        "approved, and says so here.",
    )


class PostPage(Out):
    """One page of posts, newest first."""

    data: list[PostOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


# --- admin: queues and health ------------------------------------------------------------

QueueState = Literal["waiting", "active", "delayed", "failed", "completed"]
ClearableState = Literal["waiting", "delayed", "failed", "completed", "all"]


class QueueOut(Out):
    """A queue's counts, and how many live processes drain it."""

    name: str
    waiting: int
    active: int = Field(description="Taken by a worker and not yet acknowledged.")
    delayed: int = Field(description="Due later (retries and publishes timed to the second).")
    failed: int = Field(description="Dead letters: out of retries, kept for an operator.")
    completed: int = Field(description="Finished jobs still on record (JOB_RECORDS_*).")
    completed_total: int = Field(description="Finished since the broker's namespace began.")
    total: int
    workers: int = Field(description="Processes that beat for this queue recently.")
    concurrency: int = Field(description="Worker threads per process, as configured.")


class QueueList(Out):
    """Every queue."""

    data: list[QueueOut]


class QueueJobOut(Out):
    """One job in one state."""

    id: str = Field(description="The id retry-failed takes.")
    message_id: str
    actor: str
    state: QueueState
    payload: dict[str, Any] = Field(description="The message's arguments, long values cut.")
    enqueued_at: datetime | None
    eta: datetime | None
    attempts: int = Field(description="Runs that failed so far.")
    failed_at: datetime | None
    error: str | None = Field(description="The last line of the failure's traceback.")
    traceback: str | None
    finished_at: datetime | None
    duration_ms: float | None


class QueueJobsQuery(BaseModel):
    """Which jobs of a queue to list (strings from the URL, so not strict)."""

    model_config = ConfigDict(extra="ignore")

    state: QueueState = "failed"
    offset: int = Field(default=0, ge=0, le=1_000_000)
    limit: int = Field(default=50, ge=1, le=200)


class QueueDetailOut(QueueOut):
    """A queue's counts and one page of its jobs in one state."""

    state: QueueState
    jobs: list[QueueJobOut]
    jobs_total: int = Field(description="How many jobs are in `state`.")
    offset: int
    limit: int
    next_offset: int | None = Field(description="Pass as `offset` for the next page.")


class RetryFailedBody(Body):
    """Which dead letters to retry: the ids given, or all when `ids` is left out."""

    ids: list[str] | None = Field(default=None, min_length=1, max_length=10_000)


class RetriedOut(Out):
    """The dead letters put back on the queue, and the ids asked for that were not found."""

    retried: int
    ids: list[str]
    not_found: list[str]


class ClearQuery(BaseModel):
    """Which state to clear."""

    model_config = ConfigDict(extra="ignore")

    state: ClearableState


class ClearedOut(Out):
    """How many jobs were dropped, per state."""

    cleared: dict[str, int]
    note: str | None = Field(
        default=None,
        description="Set when delayed jobs already taken by a worker could not be dropped.",
    )


class QueueActionBody(Body):
    """Seed 004's queue actions: `retry_failed` (all dead letters), `retry_specific`
    (`job_ids`), `clear_completed`, and `clear_failed`."""

    action: Literal["retry_failed", "retry_specific", "clear_completed", "clear_failed"]
    job_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=10_000, validate_default=True
    )

    @field_validator("job_ids")
    @classmethod
    def _ids_for_retry_specific(cls, value: list[str] | None, info: ValidationInfo) -> Any:
        action = info.data.get("action")
        if action == "retry_specific" and value is None:
            raise ValueError("is required with retry_specific")
        if action is not None and action != "retry_specific" and value is not None:
            raise ValueError("goes with retry_specific only")
        return value


class QueueActionOut(Out):
    """What an action did: the retry fields for retry actions, `cleared` for clear ones."""

    action: str
    retried: int | None = None
    ids: list[str] | None = None
    not_found: list[str] | None = None
    cleared: dict[str, int] | None = None
    note: str | None = None


class QueueHealthOut(QueueOut):
    """A queue's counts and verdict."""

    status: Literal["healthy", "degraded", "unhealthy"]
    problems: list[str]


class AdminHealthOut(Out):
    """The whole system's verdict: the worst of its parts, and why."""

    status: Literal["healthy", "degraded", "unhealthy"]
    checked_at: datetime
    problems: list[str]
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable"]
    schedulers: int = Field(description="Scheduler processes that ticked recently.")
    oldest_due_target_age_seconds: float | None = Field(
        description="How long the oldest due, unpublished target has waited (0: none)."
    )
    targets: dict[str, int] = Field(description="Targets in states worth watching.")
    accounts_needing_reauth: int
    queues: list[QueueHealthOut]
