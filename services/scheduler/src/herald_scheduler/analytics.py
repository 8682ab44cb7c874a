"""The scheduler's analytics sweep: published targets whose metrics slot has come go to the
analytics queue, one message per tenant (at most CHUNK targets each).

The schedule is on the targets (herald_common.analytics): publishing set each one's first slot;
a sweep claims the due ones (`metrics_due_at <= now`, read from the partial index
ix_targets_metrics_due and bounded by ANALYTICS_PULL_BATCH, `FOR UPDATE SKIP LOCKED` on
PostgreSQL so that two schedulers share the work), moves each to its next slot (None once it is
older than ANALYTICS_PULL_MAX_AGE_DAYS) and counts the pull, commits, and only then sends. If
the broker is away, the targets it could not be told about go back to being due now, and a
later sweep sends them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from dramatiq.broker import Broker
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from herald_common.analytics import METRICS, next_pull_at
from herald_common.contracts import PULL_ANALYTICS, PullAnalyticsPayload, send
from herald_common.db import session_scope, skip_locked
from herald_common.models import Target, TargetStatus
from herald_common.settings import Settings

log = logging.getLogger(__name__)

#: The most targets one message names: one pull of them fits well inside the time limit.
CHUNK = 100


@dataclass(frozen=True)
class Claimed:
    """A target claimed for a pull, and the slot it was moved to."""

    id: str
    tenant_id: str
    next_due: datetime | None


def sweep(engine: Engine, broker: Broker, settings: Settings, now: datetime) -> int:
    """One pass: claim the targets due by `now`, then send their pulls; how many were sent."""
    claimed = claim_due(engine, settings, now)
    by_tenant: dict[str, list[Claimed]] = defaultdict(list)
    for item in claimed:
        by_tenant[item.tenant_id].append(item)
    chunks = [
        items[start : start + CHUNK]
        for items in by_tenant.values()
        for start in range(0, len(items), CHUNK)
    ]
    sent = 0
    for index, chunk in enumerate(chunks):
        payload = PullAnalyticsPayload(
            tenant_id=chunk[0].tenant_id, target_ids=[c.id for c in chunk], metrics=list(METRICS)
        )
        try:
            send(broker, PULL_ANALYTICS, payload)
        except Exception as exc:
            unsent = [item for rest in chunks[index:] for item in rest]
            log.error(
                "analytics: broker unreachable (%s); %d target(s) stay due",
                type(exc).__name__,
                len(unsent),
            )
            _release(engine, unsent, now)
            return sent
        sent += len(chunk)
    if sent:
        log.info("analytics: sent pulls of %d target(s) for %d tenant(s)", sent, len(by_tenant))
    return sent


def claim_due(engine: Engine, settings: Settings, now: datetime) -> list[Claimed]:
    """Move the targets due by `now` to their next slot and count the pull; committed."""
    with session_scope(engine) as session:
        query = (
            select(Target.id, Target.tenant_id, Target.published_at)
            .where(
                col(Target.status) == TargetStatus.PUBLISHED,
                col(Target.metrics_due_at) <= now,
            )
            .order_by(col(Target.metrics_due_at))
            .limit(settings.analytics_pull_batch)
        )
        rows = session.exec(skip_locked(engine, query)).all()
        claimed = []
        for target_id, tenant_id, published_at in rows:
            next_due = next_pull_at(published_at or now, now, settings)
            session.execute(
                update(Target)
                .where(col(Target.id) == target_id, col(Target.status) == TargetStatus.PUBLISHED)
                .values(metrics_due_at=next_due, metrics_pulls=col(Target.metrics_pulls) + 1)
            )
            claimed.append(Claimed(target_id, tenant_id, next_due))
    return claimed


def _release(engine: Engine, items: list[Claimed], now: datetime) -> None:
    """Make targets whose message was not sent due again (unless something moved them since)."""
    with session_scope(engine) as session:
        for item in items:
            _due_again(session, item, now)


def _due_again(session: Session, item: Claimed, now: datetime) -> None:
    slot = (
        col(Target.metrics_due_at).is_(None)
        if item.next_due is None
        else col(Target.metrics_due_at) == item.next_due
    )
    session.execute(
        update(Target)
        .where(col(Target.id) == item.id, slot)
        .values(metrics_due_at=now, metrics_pulls=col(Target.metrics_pulls) - 1)
    )
