"""Every message that crosses a queue, declared once.

The API and the scheduler send by name (`send(broker, PUBLISH, payload)`); each worker service
declares its actor from the same contract (`contract.actor_options()`). Nobody imports another
service's code to talk to it. Payloads carry ids and small values, never objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import dramatiq
from dramatiq.broker import Broker
from pydantic import BaseModel, ConfigDict, Field

from herald_common.logs import REQUEST_ID
from herald_common.settings import Settings


class Payload(BaseModel):
    """Base of every message payload: strict, closed, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PublishTargetPayload(Payload):
    """Publish one target; `version` is the target's version when it was queued."""

    target_id: str = Field(min_length=1, max_length=36)
    version: int = Field(ge=1)


class RefreshAccountPayload(Payload):
    """Refresh one account's OAuth token."""

    tenant_id: str
    account_id: str
    reason: Literal["expiring", "weekly", "manual", "needs_auth"] = "expiring"


class GenerateMonthlyPayload(Payload):
    """Generate a month of draft posts for a brand (seed 003's content.generate.monthly)."""

    tenant_id: str
    job_id: str
    brand_id: str
    month: int = Field(ge=1, le=12)
    year: int = Field(ge=2000, le=2100)
    count: int = Field(ge=1, le=100)
    platforms: list[str] = Field(min_length=1)
    preferences: dict[str, Any] = Field(default_factory=dict)


class RegeneratePostPayload(Payload):
    """Regenerate one part of a post (seed 003's content.regen.single)."""

    tenant_id: str
    job_id: str
    post_id: str
    part: Literal["hook", "body", "hashtags", "full"]
    preferences: dict[str, Any] = Field(default_factory=dict)


class NotifyApproversPayload(Payload):
    """Tell a post's approvers that it waits for them (seed 003's approval.notify)."""

    tenant_id: str
    post_id: str
    approval_id: str
    notification_type: Literal["email", "whatsapp", "webhook", "both", "all"] = "email"
    reminder: bool = False


class DeliverWebhookPayload(Payload):
    """Try one webhook delivery; `attempt` is how many tries it had when this one was sent, so
    a duplicate message finds the delivery moved on and does nothing."""

    delivery_id: str = Field(min_length=1, max_length=36)
    attempt: int = Field(ge=0)


class PullAnalyticsPayload(Payload):
    """Pull metrics of published targets (seed 003's analytics.pull). A client's pull carries
    its job; the scheduler's own pulls name the targets that are due instead."""

    tenant_id: str
    job_id: str | None = None
    target_ids: list[str] | None = None
    start: date | None = None
    end: date | None = None
    metrics: list[str] = Field(default_factory=lambda: ["likes", "reposts", "replies", "views"])
    post_ids: list[str] | None = None


class GenerateImagePayload(Payload):
    """Render one post image (seed 003's image.generate)."""

    tenant_id: str
    job_id: str
    prompt: str
    style: Literal["realistic", "cartoon", "abstract", "minimalist"]
    width: int = Field(ge=64, le=4096)
    height: int = Field(ge=64, le=4096)
    brand_id: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How Dramatiq retries a message whose actor raised: attempts and exponential backoff."""

    max_retries: int
    min_backoff_ms: int
    max_backoff_ms: int


@dataclass(frozen=True)
class Contract:
    """One actor on one queue: the name both sides agree on, and how it runs."""

    queue: str
    actor_name: str
    job_name: str  # the seeds' name for this job, used by the admin endpoints
    payload: type[Payload]
    priority: int  # lower runs first within a worker, as in Dramatiq and Bull
    concurrency: int  # default jobs in flight per process; see Settings.concurrency_for
    retry: RetryPolicy
    time_limit_ms: int
    description: str = field(default="")
    # What runs the jobs: OS threads, or gevent's greenlets for work that mostly waits on the
    # network (many in flight in one process, without the threads' fight for the GIL).
    pool: Literal["threads", "gevent"] = "threads"

    def actor_options(self) -> dict[str, Any]:
        """Keyword arguments for `dramatiq.actor` in the worker service."""
        return {
            "actor_name": self.actor_name,
            "queue_name": self.queue,
            "priority": self.priority,
            "max_retries": self.retry.max_retries,
            "min_backoff": self.retry.min_backoff_ms,
            "max_backoff": self.retry.max_backoff_ms,
            "time_limit": self.time_limit_ms,
        }

    def message(
        self, payload: Payload | dict[str, Any], *, request_id: str | None = None
    ) -> dramatiq.Message[Any]:
        """A message for this contract, its payload checked against the schema; it carries
        `request_id` (by default the request at hand's, REQUEST_ID) in its options, so the
        worker's lines name the request that caused the work."""
        if not isinstance(payload, self.payload):
            payload = self.payload.model_validate(payload, strict=False)
        request_id = request_id or REQUEST_ID.get()
        return dramatiq.Message(
            queue_name=self.queue,
            actor_name=self.actor_name,
            args=(),
            kwargs=payload.model_dump(mode="json"),
            options={"request_id": request_id} if request_id else {},
        )


SECOND = 1000
MINUTE = 60 * SECOND

PUBLISH = Contract(
    queue="publish",
    actor_name="publish_target",
    job_name="publish.target",
    payload=PublishTargetPayload,
    priority=0,
    # A publish waits 100 ms – 2 s on a platform and spends about 1.5 ms of CPU: a process of
    # one core keeps a hundred calls in flight on gevent's greenlets (see BENCHMARKS.md).
    concurrency=100,
    pool="gevent",
    # Platform failures are retried through the schedule in the database (Settings.publish_*);
    # these Dramatiq retries cover the worker's own infrastructure failing before it claims.
    retry=RetryPolicy(max_retries=3, min_backoff_ms=2 * SECOND, max_backoff_ms=5 * MINUTE),
    time_limit_ms=2 * MINUTE,
    description="Send one post to one connected account.",
)
REFRESH_ACCOUNT = Contract(
    queue="token-refresh",
    actor_name="refresh_account",
    job_name="token.refresh",
    payload=RefreshAccountPayload,
    priority=1,
    concurrency=2,
    retry=RetryPolicy(max_retries=5, min_backoff_ms=5 * SECOND, max_backoff_ms=10 * MINUTE),
    time_limit_ms=MINUTE,
    description="Refresh one account's OAuth token.",
)
GENERATE_MONTHLY = Contract(
    queue="content",
    actor_name="generate_monthly_content",
    job_name="content.generate.monthly",
    payload=GenerateMonthlyPayload,
    priority=5,
    concurrency=2,
    retry=RetryPolicy(max_retries=3, min_backoff_ms=10 * SECOND, max_backoff_ms=10 * MINUTE),
    time_limit_ms=30 * MINUTE,
    description="Generate a month of draft posts for a brand.",
)
REGENERATE_POST = Contract(
    # Its own queue, so a month being written never holds up a one-post regeneration: the
    # content service drains both, each with its own concurrency (CONTENT_REGEN_WORKER_…).
    queue="content-regen",
    actor_name="regenerate_post",
    job_name="content.regen.single",
    payload=RegeneratePostPayload,
    priority=8,
    concurrency=2,
    retry=RetryPolicy(max_retries=3, min_backoff_ms=5 * SECOND, max_backoff_ms=5 * MINUTE),
    time_limit_ms=5 * MINUTE,
    description="Regenerate the hook, body, hashtags or all of one post.",
)
NOTIFY_APPROVERS = Contract(
    queue="approval",
    actor_name="notify_approvers",
    job_name="approval.notify",
    payload=NotifyApproversPayload,
    priority=7,
    concurrency=3,
    retry=RetryPolicy(max_retries=5, min_backoff_ms=5 * SECOND, max_backoff_ms=30 * MINUTE),
    time_limit_ms=MINUTE,
    description="Notify a post's approvers by email, WhatsApp or webhook.",
)
PULL_ANALYTICS = Contract(
    queue="analytics",
    actor_name="pull_analytics",
    job_name="analytics.pull",
    payload=PullAnalyticsPayload,
    priority=3,
    concurrency=2,
    retry=RetryPolicy(max_retries=3, min_backoff_ms=30 * SECOND, max_backoff_ms=30 * MINUTE),
    time_limit_ms=10 * MINUTE,
    description="Pull likes, reposts, replies and views of published posts.",
)
GENERATE_IMAGE = Contract(
    queue="image",
    actor_name="generate_image",
    job_name="image.generate",
    payload=GenerateImagePayload,
    priority=6,
    concurrency=2,
    retry=RetryPolicy(max_retries=2, min_backoff_ms=5 * SECOND, max_backoff_ms=5 * MINUTE),
    time_limit_ms=5 * MINUTE,
    description="Render a post image in the brand's colours and fonts.",
)
DELIVER_WEBHOOK = Contract(
    queue="webhooks",
    actor_name="deliver_webhook",
    job_name="webhook.deliver",
    payload=DeliverWebhookPayload,
    priority=4,
    # A delivery mostly waits on the receiver (up to PLATFORM_TIMEOUT_SECONDS).
    concurrency=8,
    # A receiver's failure is retried through the schedule in the database (24 h of backoff);
    # these cover the worker's own infrastructure failing.
    retry=RetryPolicy(max_retries=3, min_backoff_ms=5 * SECOND, max_backoff_ms=MINUTE),
    time_limit_ms=MINUTE,
    description="POST one outcome event to one of a tenant's webhook endpoints.",
)

CONTRACTS: tuple[Contract, ...] = (
    PUBLISH,
    REFRESH_ACCOUNT,
    GENERATE_MONTHLY,
    REGENERATE_POST,
    NOTIFY_APPROVERS,
    PULL_ANALYTICS,
    GENERATE_IMAGE,
    DELIVER_WEBHOOK,
)

#: Queue name → default concurrency (the largest of its actors' defaults).
QUEUES: dict[str, int] = {}
for _contract in CONTRACTS:
    QUEUES[_contract.queue] = max(QUEUES.get(_contract.queue, 0), _contract.concurrency)


def by_actor_name(name: str) -> Contract:
    """The contract of an actor; KeyError when there is none."""
    for contract in CONTRACTS:
        if contract.actor_name == name:
            return contract
    raise KeyError(name)


def queue_concurrency(settings: Settings, queue: str) -> int:
    """How many worker threads drain `queue` under these settings."""
    return settings.concurrency_for(queue, QUEUES[queue])


def send(
    broker: Broker,
    contract: Contract,
    payload: Payload | dict[str, Any],
    *,
    delay_ms: int | None = None,
    request_id: str | None = None,
) -> dramatiq.Message[Any]:
    """Enqueue one message by contract name (carrying `request_id`, else the request at
    hand's). Call only after the transaction has committed."""
    message = contract.message(payload, request_id=request_id)
    return broker.enqueue(message, delay=delay_ms if delay_ms and delay_ms > 0 else None)
