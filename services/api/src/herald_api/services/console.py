"""What the operator's console shows beyond the admin API's answers: throughput, publish
lateness, the accounts and targets that need a person, and the cron entries.

Every query reads a partial index or a bounded window (`ix_targets_unknown`,
`ix_targets_failed`, attempts by `finished_at`), so a page costs the same with a million posts
scheduled. The console is the operator's, so these read across tenants and name each row's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronsim import CronSim
from sqlmodel import Session, col, select

from herald_common.logs import redact
from herald_common.models import (
    Account,
    AccountStatus,
    Attempt,
    AttemptOutcome,
    CronRun,
    Post,
    Target,
    TargetStatus,
    Tenant,
)
from herald_common.queues import QueueStore, queue_names
from herald_common.settings import Settings

#: Throughput is counted over this window of finished-job records.
THROUGHPUT_WINDOW = timedelta(minutes=5)
#: Lateness percentiles are read from the attempts of this window (at most LATENESS_SAMPLE).
LATENESS_WINDOW = timedelta(minutes=15)
LATENESS_SAMPLE = 20_000
#: Rows per list on a page.
PAGE = 50
_SECRET_NAME = re.compile(r"(?i)(token|secret|password|credential|authorization|api_key|jwt)")
MASKED = "••••••"


def mask(value: Any) -> Any:
    """A payload with secrets masked: values under secret-sounding keys hidden, and anything
    that looks like a token inside a string masked as the logs do."""
    if isinstance(value, Mapping):
        return {
            k: MASKED if _SECRET_NAME.search(str(k)) and v not in (None, "") else mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def throughput(store: QueueStore, now: datetime) -> dict[str, float]:
    """Jobs finished per minute over the last few minutes, per queue."""
    since = (now - THROUGHPUT_WINDOW).timestamp()
    minutes = THROUGHPUT_WINDOW.total_seconds() / 60
    return {name: store.finished_since(name, since) / minutes for name in queue_names()}


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Lateness:
    """Published − scheduled, over the recent window's publishes."""

    count: int
    p50: float | None
    p99: float | None


def lateness(session: Session, now: datetime) -> Lateness:
    """Publish lateness p50 and p99 of the targets published in the last minutes."""
    values = session.exec(
        select(Attempt.lateness_seconds)
        .where(
            col(Attempt.finished_at) >= now - LATENESS_WINDOW,
            Attempt.outcome == AttemptOutcome.PUBLISHED,
            col(Attempt.lateness_seconds).is_not(None),
        )
        .limit(LATENESS_SAMPLE)
    ).all()
    ordered = sorted(float(v) for v in values if v is not None)
    return Lateness(len(ordered), percentile(ordered, 0.50), percentile(ordered, 0.99))


def accounts_needing_reauth(session: Session) -> list[dict[str, Any]]:
    """Accounts waiting for their owner to connect them again, with the platform's reason."""
    rows = session.exec(
        select(Account, Tenant.name)
        .join(Tenant, col(Tenant.id) == col(Account.tenant_id))
        .where(Account.status == AccountStatus.NEEDS_REAUTH, col(Account.deleted_at).is_(None))
        .order_by(col(Account.updated_at).desc())
        .limit(PAGE)
    ).all()
    return [
        {
            "id": a.id,
            "tenant": name,
            "platform": a.platform,
            "handle": a.handle,
            "reason": a.status_reason or a.refresh_error,
            "since": a.updated_at,
        }
        for a, name in rows
    ]


def _targets_in(session: Session, status: str, order: Any) -> list[dict[str, Any]]:
    rows = session.exec(
        select(Target, Post.content, Account.handle, Tenant.name)
        .join(Post, col(Post.id) == col(Target.post_id))
        .join(Account, col(Account.id) == col(Target.account_id))
        .join(Tenant, col(Tenant.id) == col(Target.tenant_id))
        .where(Target.status == status)
        .order_by(order.desc())
        .limit(PAGE)
    ).all()
    return [
        {
            "id": t.id,
            "post_id": t.post_id,
            "tenant": tenant,
            "platform": t.platform,
            "handle": handle,
            "content": content if len(content) <= 140 else content[:140] + "…",
            "error_kind": t.error_kind,
            "error": t.error,
            "attempts": t.attempt_count,
            "due_at": t.due_at,
            "since": t.finished_at or t.updated_at,
        }
        for t, content, handle, tenant in rows
    ]


def needing_a_person(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Targets in `unknown` (a person must say whether they went out) and `failed` ones,
    newest first."""
    return {
        "unknown": _targets_in(session, TargetStatus.UNKNOWN, col(Target.updated_at)),
        "failed": _targets_in(session, TargetStatus.FAILED, col(Target.finished_at)),
    }


def find_post(session: Session, post_id: str) -> Post | None:
    """Any tenant's post (the console acts for the operator, then as the post's tenant)."""
    return session.get(Post, post_id)


def cron(session: Session, settings: Settings, now: datetime) -> dict[str, Any]:
    """Each cron entry with its expression and next firing, and the latest runs."""
    entries = [
        {"name": name, "expression": expression, "next": next(CronSim(expression, now))}
        for name, expression in settings.cron_schedule().items()
    ]
    runs = session.exec(select(CronRun).order_by(col(CronRun.fire_at).desc()).limit(PAGE)).all()
    return {"entries": entries, "runs": list(runs)}
