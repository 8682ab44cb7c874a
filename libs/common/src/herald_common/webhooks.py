"""Outcome webhooks for apps: events emitted where things happen, delivered by their own queue.

1. Where an outcome commits (the publisher, reconciliation, a job's end, an account needing
   re-auth, an approval), `Events.emit` writes one `webhook_deliveries` row per enabled
   endpoint of the tenant that wants that event type, then sends a `deliver_webhook` message
   per row. A tenant with no endpoints costs nothing: whether it has any is kept per process
   for WEBHOOK_ENDPOINTS_CACHE_SECONDS, so the publish path sends no statement for it.
2. The `webhooks` worker (`deliver`) claims the delivery with a compare-and-set on its count
   of tries (a duplicate message finds it moved on), POSTs the event signed as approval
   webhooks are (`X-Herald-Signature`, the tenant's signing key; `Idempotency-Key` = the
   event's id), and records the try in the row's history.
3. A failed try is scheduled again in the database (`next_attempt_at`, backoff from 10 s to
   8 h), not as a delayed message: the scheduler's sweep (`send_due`) sends what is due, so
   retries survive a broker restart for the whole WEBHOOK_RETRY_SECONDS (24 h). When a
   delivery has failed for that long it is `failed`, and its endpoint is disabled with the
   reason; the tenant turns it back on, and can send any delivery again by hand.

An event's id is derived from what happened (the post, its new status and when it changed),
so the same outcome seen twice — two targets of one post settling at once — is one delivery.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from dramatiq.broker import Broker
from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from herald_common.contracts import DELIVER_WEBHOOK, DeliverWebhookPayload, send
from herald_common.db import is_sqlite
from herald_common.errors import PlatformError
from herald_common.lifecycle.claim import Claim
from herald_common.lifecycle.outcome import Outcome
from herald_common.models import Post, Target, WebhookDelivery, WebhookEndpoint
from herald_common.models.base import new_id
from herald_common.notify.webhook import WebhookSender
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "post.published",
    "post.partially_published",
    "post.failed",
    "target.unknown",
    "account.needs_reauth",
    "job.succeeded",
    "job.failed",
    "approval.requested",
    "approval.approved",
    "approval.rejected",
)
#: A post's statuses that are outcomes an app hears of.
POST_EVENTS = {
    "published": "post.published",
    "partially_published": "post.partially_published",
    "failed": "post.failed",
}
#: Waits between tries: the n-th failure waits BACKOFF[n-1] (the last one repeats).
BACKOFF = (10, 60, 300, 1800, 3600, 7200, 14400, 28800)
#: A message sent for a delivery holds it this long; the sweep sends it again after that.
LEASE = timedelta(minutes=2)
SWEEP_BATCH = 500

_ENDPOINTS = WebhookEndpoint.__table__  # type: ignore[attr-defined]
_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]
_EVENT_NAMESPACE = uuid.UUID("6c0b1f63-9a55-4b1e-9d0f-5e2b1d7a4c11")


def event_id(*parts: object) -> str:
    """The id of the event that `parts` identify: the same outcome gives the same id."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, ":".join(str(p) for p in parts)))


def backoff(failures: int) -> timedelta:
    """The wait after the `failures`-th failed try."""
    return timedelta(seconds=BACKOFF[min(max(failures, 1), len(BACKOFF)) - 1])


class Events:
    """Emits a tenant's events: writes their deliveries and sends them. Never raises: an
    outcome is recorded whether or not its event could be."""

    def __init__(
        self,
        engine: Engine,
        broker: Broker,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._ttl = settings.webhook_endpoints_cache_seconds
        self._retry = timedelta(seconds=settings.webhook_retry_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._has: dict[str, tuple[float, bool]] = {}

    def has_endpoints(self, tenant_id: str) -> bool:
        """Whether the tenant has an enabled endpoint (known for WEBHOOK_ENDPOINTS_CACHE_SECONDS)."""
        now = self._clock()
        with self._lock:
            known = self._has.get(tenant_id)
        if known is not None and now - known[0] < self._ttl:
            return known[1]
        with self._engine.connect() as db:
            found = (
                db.execute(
                    select(_ENDPOINTS.c.id)
                    .where(_ENDPOINTS.c.tenant_id == tenant_id, _ENDPOINTS.c.enabled.is_(True))
                    .limit(1)
                ).first()
                is not None
            )
        with self._lock:
            if len(self._has) > 100_000:
                self._has.clear()
            self._has[tenant_id] = (now, found)
        return found

    def forget(self, tenant_id: str) -> None:
        """The tenant's endpoints changed (in this process): read them again next time."""
        with self._lock:
            self._has.pop(tenant_id, None)

    def emit(
        self, tenant_id: str, event_type: str, data: Mapping[str, Any], *, id: str | None = None
    ) -> int:
        """Deliver an event to the tenant's endpoints that want it; how many deliveries were
        written (0 for a repeat of an event already delivered)."""
        try:
            if not self.has_endpoints(tenant_id):
                return 0
            return self._emit(tenant_id, event_type, data, id or new_id())
        except Exception:
            log.exception("webhooks: event %s of tenant %s not emitted", event_type, tenant_id)
            return 0

    def _emit(self, tenant_id: str, event_type: str, data: Mapping[str, Any], eid: str) -> int:
        now = utcnow()
        event = {"id": eid, "type": event_type, "created_at": now.isoformat(), "data": dict(data)}
        sent: list[tuple[str, int]] = []
        with self._engine.begin() as db:
            endpoints = db.execute(
                select(_ENDPOINTS.c.id, _ENDPOINTS.c.events).where(
                    _ENDPOINTS.c.tenant_id == tenant_id, _ENDPOINTS.c.enabled.is_(True)
                )
            ).all()
            for endpoint in endpoints:
                if event_type not in (endpoint.events or ()):
                    continue
                delivery = new_id()
                try:
                    with db.begin_nested():
                        db.execute(
                            insert(_DELIVERIES).values(
                                id=delivery,
                                tenant_id=tenant_id,
                                endpoint_id=endpoint.id,
                                event_id=eid,
                                event_type=event_type,
                                payload=event,
                                status="pending",
                                attempts=0,
                                # Sent now; the sweep sends it again only if this was lost.
                                next_attempt_at=now + LEASE,
                                retry_until=now + self._retry,
                                history=[],
                                created_at=now,
                            )
                        )
                except IntegrityError:
                    continue  # this event was delivered to that endpoint already
                sent.append((delivery, 0))
        # Committed: only now may the messages go.
        send_deliveries(self._broker, sent)
        return len(sent)

    # --- what happened, as events -------------------------------------------------------------

    def account_needs_reauth(self, account: Any, reason: str, now: datetime) -> None:
        """After an account was marked `needs_reauth` (committed)."""
        self.emit(
            account.tenant_id,
            "account.needs_reauth",
            {
                "account_id": account.id,
                "platform": account.platform,
                "handle": getattr(account, "handle", None),
                "reason": reason,
            },
            id=event_id(account.id, "needs_reauth", now.isoformat()),
        )

    def job_finished(self, job: Any, status: str, detail: Mapping[str, Any]) -> None:
        """After a client's job ended (committed): `job.succeeded` or `job.failed`."""
        self.emit(
            job.tenant_id,
            f"job.{status}",
            {"job_id": job.id, "kind": job.kind, "status": status, **detail},
            id=event_id(job.id, status),
        )

    def target_settled(self, claim: Claim, outcome: Outcome) -> None:
        """After a try's outcome committed (the publisher, reconciliation): its events."""
        if not self.has_endpoints(claim.tenant_id):
            return
        result = outcome.result
        target = {
            "id": claim.target_id,
            "platform": claim.platform,
            "status": outcome.status.value,
            "version": claim.version,
            "platform_url": result.url if result is not None else None,
            "error": outcome.error,
        }
        self.post_settled(claim.tenant_id, claim.post_id, claim.post_status, target)

    def post_settled(
        self, tenant_id: str, post_id: str, before: str | None, target: Mapping[str, Any]
    ) -> None:
        """After a target's outcome committed: `post.*` when the post reached an outcome,
        `target.unknown` when the target needs a person. Reads the post only when the tenant
        has endpoints."""
        try:
            if not self.has_endpoints(tenant_id):
                return
            if target.get("status") == "unknown":
                self.emit(
                    tenant_id,
                    "target.unknown",
                    {"post_id": post_id, "target": dict(target)},
                    id=event_id(target["id"], "unknown", target.get("version")),
                )
            with self._engine.connect() as db:
                post = db.execute(
                    select(Post.status, Post.updated_at, Post.content).where(  # type: ignore[call-overload]
                        Post.id == post_id
                    )
                ).first()
                if post is None or post.status not in POST_EVENTS or post.status == before:
                    return
                targets = db.execute(
                    select(  # type: ignore[call-overload]
                        Target.id,
                        Target.account_id,
                        Target.status,
                        Target.platform_post_id,
                        Target.platform_url,
                        Target.error,
                    ).where(Target.post_id == post_id)
                ).all()
            data = {
                "post_id": post_id,
                "status": post.status,
                "targets": [
                    {
                        "id": t.id,
                        "account_id": t.account_id,
                        "status": t.status,
                        "platform_post_id": t.platform_post_id,
                        "platform_url": t.platform_url,
                        "error": t.error,
                    }
                    for t in targets
                ],
            }
            self.emit(
                tenant_id,
                POST_EVENTS[post.status],
                data,
                id=event_id(post_id, post.status, post.updated_at.isoformat()),
            )
        except Exception:
            log.exception("webhooks: outcome of post %s not emitted", post_id)


def send_deliveries(broker: Broker, deliveries: Sequence[tuple[str, int]]) -> None:
    """Send a message per (delivery id, tries so far); one the broker refused is sent again
    by the scheduler's sweep once its lease ends."""
    for delivery_id, attempt in deliveries:
        try:
            send(
                broker,
                DELIVER_WEBHOOK,
                DeliverWebhookPayload(delivery_id=delivery_id, attempt=attempt),
            )
        except Exception as exc:
            log.warning("webhooks: delivery %s not sent (%s)", delivery_id, type(exc).__name__)


def send_due(engine: Engine, broker: Broker, now: datetime, *, limit: int = SWEEP_BATCH) -> int:
    """The scheduler's sweep: take pending deliveries that are due, of enabled endpoints, hold
    each for LEASE and send it; how many were sent."""
    due = (
        select(_DELIVERIES.c.id, _DELIVERIES.c.attempts)
        .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
        .where(
            _DELIVERIES.c.status == "pending",
            _DELIVERIES.c.next_attempt_at <= now,
            _ENDPOINTS.c.enabled.is_(True),
        )
        .order_by(_DELIVERIES.c.next_attempt_at)
        .limit(limit)
    )
    if not is_sqlite(engine):
        due = due.with_for_update(of=_DELIVERIES, skip_locked=True)
    with engine.begin() as db:
        rows = db.execute(due).all()
        if rows:
            db.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id.in_([r.id for r in rows]))
                .values(next_attempt_at=now + LEASE)
            )
    send_deliveries(broker, [(r.id, r.attempts) for r in rows])
    return len(rows)


class Deliverer:
    """The `webhooks` worker's work: one try of one delivery."""

    def __init__(self, engine: Engine, sender: WebhookSender, settings: Settings) -> None:
        self._engine = engine
        self._sender = sender
        self._settings = settings

    def deliver(self, delivery_id: str, attempt: int) -> str:
        """Try the delivery if it still has `attempt` tries behind it; what happened."""
        now = utcnow()
        with self._engine.begin() as db:
            row = db.execute(
                select(_DELIVERIES, _ENDPOINTS.c.url, _ENDPOINTS.c.enabled)
                .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
                .where(_DELIVERIES.c.id == delivery_id)
            ).first()
            if row is None or row.status != "pending" or row.attempts != attempt:
                return "stale"
            if not row.enabled:
                return "endpoint disabled"
            claimed = db.execute(
                update(_DELIVERIES)
                .where(
                    _DELIVERIES.c.id == delivery_id,
                    _DELIVERIES.c.status == "pending",
                    _DELIVERIES.c.attempts == attempt,
                )
                .values(attempts=attempt + 1, next_attempt_at=now + LEASE)
            ).rowcount
        if not claimed:
            return "stale"
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            status_code = self._sender.send(
                row.url,
                row.event_type,
                row.payload,
                idempotency_key=row.event_id,
                tenant_id=row.tenant_id,
            )
        except PlatformError as exc:
            status_code, error = exc.http_status, exc.message
        took = round((time.monotonic() - started) * 1000)
        return self._record(row, attempt + 1, status_code, error, took)

    def _record(
        self, row: Any, tries: int, status_code: int | None, error: str | None, took_ms: int
    ) -> str:
        now = utcnow()
        entry = {"at": now.isoformat(), "status_code": status_code, "error": error, "ms": took_ms}
        history = [*(row.history or []), entry]
        values: dict[str, Any] = {
            "history": history,
            "last_status_code": status_code,
            "last_error": error[:1000] if error else None,
        }
        if error is None:
            values |= {"status": "succeeded", "delivered_at": now, "next_attempt_at": None}
            outcome = "succeeded"
        elif now >= row.retry_until:
            values |= {"status": "failed", "next_attempt_at": None}
            outcome = "failed"
        else:
            values["next_attempt_at"] = now + backoff(tries)
            outcome = "retrying"
        with self._engine.begin() as db:
            db.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == row.id, _DELIVERIES.c.attempts == tries)
                .values(**values)
            )
            if outcome == "failed":
                _disable(db, row.endpoint_id, error or "", tries, now)
        if outcome != "succeeded":
            log.info("webhooks: delivery %s try %d %s: %s", row.id, tries, outcome, error)
        return outcome


def _disable(db: Connection, endpoint_id: str, error: str, tries: int, now: datetime) -> None:
    reason = f"a delivery failed {tries} times over its retry window; the last: {error}"
    db.execute(
        update(_ENDPOINTS)
        .where(and_(_ENDPOINTS.c.id == endpoint_id, _ENDPOINTS.c.enabled.is_(True)))
        .values(enabled=False, disabled_reason=reason[:1000], disabled_at=now, updated_at=now)
    )


_SHARED: dict[tuple[int, int], Events] = {}
_SHARED_LOCK = threading.Lock()


def events_for(engine: Engine, broker: Broker, settings: Settings) -> Events:
    """The process's one Events on this engine and broker, so that what it knows of a tenant's
    endpoints is forgotten everywhere in the process when they change."""
    key = (id(engine), id(broker))
    with _SHARED_LOCK:
        events = _SHARED.get(key)
        if events is None:
            events = _SHARED[key] = Events(engine, broker, settings)
    return events
