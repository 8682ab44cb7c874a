"""The database models of record, one module per domain."""

from herald_common.models.accounts import Account, AccountStatus, OAuthState
from herald_common.models.analytics import MetricSnapshot
from herald_common.models.approvals import Approval, ApprovalNotice, ApprovalStatus
from herald_common.models.brands import Brand
from herald_common.models.console import ConsoleSession
from herald_common.models.cron import CronRun
from herald_common.models.idempotency import IdempotencyKey
from herald_common.models.images import Image
from herald_common.models.jobs import Job, JobStatus
from herald_common.models.posts import (
    ACTIVE_TARGET_STATES,
    Attempt,
    AttemptOutcome,
    Post,
    PostStatus,
    Target,
    TargetStatus,
)
from herald_common.models.sandbox import SandboxDelivery
from herald_common.models.tenants import ApiKey, Tenant
from herald_common.models.webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ACTIVE_TARGET_STATES",
    "Account",
    "AccountStatus",
    "ApiKey",
    "Approval",
    "ApprovalNotice",
    "ApprovalStatus",
    "Attempt",
    "AttemptOutcome",
    "Brand",
    "ConsoleSession",
    "CronRun",
    "IdempotencyKey",
    "Image",
    "Job",
    "JobStatus",
    "MetricSnapshot",
    "OAuthState",
    "Post",
    "PostStatus",
    "SandboxDelivery",
    "Target",
    "TargetStatus",
    "Tenant",
    "WebhookDelivery",
    "WebhookEndpoint",
]
