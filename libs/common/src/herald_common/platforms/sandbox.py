"""The built-in `sandbox` platform: keeps every post it is sent, so a new user sees one go out.

It behaves like a real platform with an idempotency key: a repeated key returns the post
accepted the first time. Its store is Herald's own database, so an accepted post is written in
the transaction that records the target's outcome (PublishResult.with_outcome): a worker that
dies before recording leaves no delivery behind, as if the platform never took it. With
`hold_after_accept_ms`, it commits the delivery itself and then waits, as a real platform
does: the window in which a crash leaves a post published but not recorded, for tests of
reconciliation. Through the account's settings it can be told to fail or to be slow,
so retries and failures can be shown without code changes:

    {"fail": "retryable" | "rate_limited" | "permanent" | "needs_auth",  # default: never
     "fail_times": 1,          # fail the first N calls of each post, then succeed (default: all)
     "fail_message": "...",    # the platform's error text
     "retry_after": 3,         # seconds, sent as Retry-After with retryable/rate_limited
     "latency_ms": 200,        # wait before answering
     "latency_jitter_ms": 50,  # ± this much, uniformly, around latency_ms
     "hold_after_accept_ms": 0,  # wait after accepting, before answering (crash-test window)
     "max_length": 500,        # characters a post may have
     "pace_limit": 2, "pace_window_seconds": 60,  # pace publishes like a rate-limited platform
     "metrics_fail": "rate_limited"}  # metrics reads fail: retryable | rate_limited |
                                      # needs_auth | permanent | gone (default: never)

Metrics grow with the delivery's age, the same for the same post at the same age: `views` is
the square root of its age in seconds times a factor (10 to 19) drawn from the delivery's id,
and the other counts are fractions of it (see `sandbox_metrics`). So a new user, and tests,
see snapshots change from one pull to the next.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import bindparam, exists
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from herald_common.db import session_scope
from herald_common.errors import NeedsAuth, PermanentError, RateLimited, TransientError
from herald_common.hot import BufferedConnection, HotConnection
from herald_common.models import Attempt, SandboxDelivery
from herald_common.platforms.base import (
    AccountRef,
    MetricsRequest,
    Pace,
    Platform,
    PostMetrics,
    PublishRequest,
    PublishResult,
    Violation,
)
from herald_common.timeutil import utcnow


class SandboxSettings(BaseModel):
    """The options a sandbox account accepts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    fail: Literal["retryable", "rate_limited", "permanent", "needs_auth"] | None = None
    fail_times: int | None = Field(default=None, ge=1)
    fail_message: str | None = Field(default=None, max_length=1000)
    retry_after: float | None = Field(default=None, ge=0, le=3600)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    latency_jitter_ms: int = Field(default=0, ge=0, le=60_000)
    hold_after_accept_ms: int = Field(default=0, ge=0, le=600_000)
    max_length: int = Field(default=500, ge=1, le=100_000)
    # Pace this account like a platform that allows `pace_limit` posts per `pace_window_seconds`.
    pace_limit: int | None = Field(default=None, ge=1, le=100_000)
    pace_window_seconds: int = Field(default=60, ge=1, le=7 * 86400)
    # Make metrics reads fail like a platform's would ("gone": the post was deleted).
    metrics_fail: Literal["retryable", "rate_limited", "needs_auth", "permanent", "gone"] | None = (
        None
    )


_DEFAULTS = SandboxSettings()


def sandbox_settings(settings: Mapping[str, Any]) -> SandboxSettings:
    """An account's sandbox options (most accounts have none: no parsing then)."""
    return SandboxSettings.model_validate(dict(settings)) if settings else _DEFAULTS


class SandboxPlatform(Platform):
    """A platform whose store is Herald's own database table `sandbox_deliveries`."""

    name = "sandbox"

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def paces(self, account: AccountRef) -> tuple[Pace, ...]:
        options = sandbox_settings(account.settings)
        if options.pace_limit is None:
            return ()
        return (Pace("account", options.pace_limit, options.pace_window_seconds),)

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        options = sandbox_settings(account.settings)
        if len(text) > options.max_length:
            return [
                Violation(
                    "max_length",
                    f"is {len(text)} characters; this sandbox account takes at most "
                    f"{options.max_length}",
                )
            ]
        return []

    def publish(self, request: PublishRequest) -> PublishResult:
        options = sandbox_settings(request.account.settings)
        if latency := _latency_seconds(options):
            time.sleep(latency)
        if options.fail:
            existing = self.lookup(request)
            if existing is not None:
                return existing
            if self._should_fail(request, options):
                self._fail(request, options)
        if options.hold_after_accept_ms:
            return self._accept_and_hold(request, options.hold_after_accept_ms)
        delivery_id = accepted_id(request)
        result = self._result(delivery_id, request.account, status=200)
        return replace(
            result,
            with_outcome=lambda db, attempt_id: self._store(db, request, delivery_id, attempt_id),
        )

    def _store(
        self,
        db: HotConnection | BufferedConnection,
        request: PublishRequest,
        delivery_id: str,
        attempt_id: str | None,
    ) -> None:
        """Write the accepted post in the outcome's transaction, if the outcome is recorded
        (its attempt row `attempt_id` exists; None: unconditionally). A key accepted before is
        the same post (its id is the key's), kept as it was: one statement either way."""
        statement = (_ACCEPT if attempt_id is None else _ACCEPT_IF_RECORDED)[db.dialect.name]
        db.execute(
            statement,
            {
                "id": delivery_id,
                "tenant_id": request.account.tenant_id,
                "account_id": request.account.id,
                "idempotency_key": request.idempotency_key,
                "accepted_key": request.idempotency_key,
                "outcome": "accepted",
                "content": request.text,
                "created_at": utcnow(),
                "attempt_id": attempt_id,
            },
        )

    def _accept_and_hold(self, request: PublishRequest, hold_ms: int) -> PublishResult:
        """Accept in a transaction of its own, then wait before answering."""
        existing = self.lookup(request)
        if existing is not None:
            return existing
        with session_scope(self._engine) as session:
            delivery = SandboxDelivery(
                id=accepted_id(request),
                tenant_id=request.account.tenant_id,
                account_id=request.account.id,
                idempotency_key=request.idempotency_key,
                accepted_key=request.idempotency_key,
                outcome="accepted",
                content=request.text,
            )
            session.add(delivery)
            try:
                session.flush()
            except IntegrityError:
                # Another call with the same key won the race: answer with its post.
                session.rollback()
                delivery = None
        if delivery is None:
            found = self.lookup(request)
            assert found is not None
            return found
        time.sleep(hold_ms / 1000)
        return self._result(delivery.id, request.account, status=200)

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        with session_scope(self._engine) as session:
            delivery = session.exec(
                select(SandboxDelivery).where(
                    SandboxDelivery.account_id == request.account.id,
                    SandboxDelivery.accepted_key == request.idempotency_key,
                )
            ).first()
        return self._result(delivery.id, request.account, status=200) if delivery else None

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        options = sandbox_settings(request.account.settings)
        if options.metrics_fail:
            _fail_metrics(options)
        with session_scope(self._engine) as session:
            delivery = session.exec(
                select(SandboxDelivery).where(
                    SandboxDelivery.id == request.platform_post_id,
                    SandboxDelivery.account_id == request.account.id,
                    SandboxDelivery.outcome == "accepted",
                )
            ).first()
        if delivery is None:
            raise PermanentError(
                f"sandbox: no post {request.platform_post_id} on this account", http_status=404
            )
        now = request.now or utcnow()
        return sandbox_metrics(delivery.id, (now - delivery.created_at).total_seconds())

    def _should_fail(self, request: PublishRequest, options: SandboxSettings) -> bool:
        if options.fail_times is None:
            return True
        with session_scope(self._engine) as session:
            failures = session.exec(
                select(func.count())
                .select_from(SandboxDelivery)
                .where(
                    SandboxDelivery.account_id == request.account.id,
                    SandboxDelivery.idempotency_key == request.idempotency_key,
                    SandboxDelivery.outcome != "accepted",
                )
            ).one()
        return failures < options.fail_times

    def _fail(self, request: PublishRequest, options: SandboxSettings) -> None:
        kind = options.fail
        message = (
            options.fail_message
            or {
                "retryable": "sandbox: service unavailable (told to fail by the account's settings)",
                "rate_limited": "sandbox: too many requests (told to fail by the account's settings)",
                "permanent": "sandbox: post rejected (told to fail by the account's settings)",
                "needs_auth": "sandbox: access token expired (told to fail by the account's settings)",
            }[kind or "permanent"]
        )
        with session_scope(self._engine) as session:
            session.add(
                SandboxDelivery(
                    tenant_id=request.account.tenant_id,
                    account_id=request.account.id,
                    idempotency_key=request.idempotency_key,
                    outcome=f"failed_{kind}",
                    content=request.text,
                    error=message,
                )
            )
        if kind == "retryable":
            raise TransientError(message, http_status=503, retry_after=options.retry_after)
        if kind == "rate_limited":
            raise RateLimited(message, http_status=429, retry_after=options.retry_after)
        if kind == "needs_auth":
            raise NeedsAuth(message, http_status=401)
        raise PermanentError(message, http_status=422)

    @staticmethod
    def _result(delivery_id: str, account: AccountRef, *, status: int) -> PublishResult:
        return PublishResult(
            platform_post_id=delivery_id,
            url=f"sandbox://{account.handle}/{delivery_id}",
            http_status=status,
        )


def _latency_seconds(options: SandboxSettings) -> float:
    """How long this call waits: latency_ms ± up to latency_jitter_ms, never below zero."""
    jitter = random.uniform(-1, 1) * options.latency_jitter_ms if options.latency_jitter_ms else 0
    return max(0.0, options.latency_ms + jitter) / 1000


_DELIVERIES = SandboxDelivery.__table__  # type: ignore[attr-defined]
_ATTEMPTS = Attempt.__table__  # type: ignore[attr-defined]
_COLUMNS = (
    "id",
    "tenant_id",
    "account_id",
    "idempotency_key",
    "accepted_key",
    "outcome",
    "content",
    "created_at",
)
_DIALECTS = (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
#: INSERT … ON CONFLICT DO NOTHING (the key was accepted before: it is that post), per dialect.
_ACCEPT = {
    name: dialect_insert(_DELIVERIES)
    .values({column: bindparam(column) for column in _COLUMNS})
    .on_conflict_do_nothing()
    for name, dialect_insert in _DIALECTS
}
#: The same, only if the outcome's attempt row exists (the transaction recorded the outcome).
_ACCEPT_IF_RECORDED = {
    name: dialect_insert(_DELIVERIES)
    .from_select(
        list(_COLUMNS),
        select(  # type: ignore[call-overload]
            *(bindparam(column, type_=_DELIVERIES.c[column].type) for column in _COLUMNS)
        ).where(exists().where(_ATTEMPTS.c.id == bindparam("attempt_id"))),
    )
    .on_conflict_do_nothing()
    for name, dialect_insert in _DIALECTS
}
#: Accepted posts are named by their account and key, as a platform answers a repeated key with
#: the post it accepted first.
_ACCEPTED = uuid.UUID("5c1f0e5e-7a51-4c4e-9a0b-8d7c2b1e3f60")


def accepted_id(request: PublishRequest) -> str:
    """The id of the post this account accepts for this request's idempotency key."""
    return str(uuid.uuid5(_ACCEPTED, f"{request.account.id}/{request.idempotency_key}"))


def sandbox_metrics(delivery_id: str, age_seconds: float) -> PostMetrics:
    """The sandbox's counts for a post of this age: they grow with the square root of it."""
    factor = 10 + int(hashlib.sha256(delivery_id.encode()).hexdigest()[:8], 16) % 10
    views = int(math.sqrt(max(age_seconds, 0.0)) * factor)
    likes = views // 10
    reposts = likes // 4
    return PostMetrics(
        likes=likes,
        reposts=reposts,
        replies=likes // 3,
        quotes=reposts // 2,
        views=views,
        impressions=views * 3 // 2,
        extra={"bookmarks": likes // 5},
    )


def _fail_metrics(options: SandboxSettings) -> None:
    kind = options.metrics_fail
    told = "(told to fail by the account's settings)"
    if kind == "retryable":
        raise TransientError(f"sandbox: service unavailable {told}", http_status=503)
    if kind == "rate_limited":
        raise RateLimited(
            f"sandbox: too many requests {told}", http_status=429, retry_after=options.retry_after
        )
    if kind == "needs_auth":
        raise NeedsAuth(f"sandbox: access token expired {told}", http_status=401)
    if kind == "gone":
        raise PermanentError(f"sandbox: the post was deleted {told}", http_status=404)
    raise PermanentError(f"sandbox: metrics refused {told}", http_status=403)
