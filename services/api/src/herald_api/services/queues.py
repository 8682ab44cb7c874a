"""The queue admin API's work: counts, job pages, retrying dead letters, clearing a state, and
the system's health. Admin keys only (the resources check); queues are the contracts' queues.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.services.health import readiness
from herald_common.contracts import queue_concurrency
from herald_common.errors import NotFound
from herald_common.health import DEGRADED, UNHEALTHY, Verdict, assess, read_system
from herald_common.models import AccountStatus
from herald_common.queues import (
    CLEARABLE,
    SCHEDULER_ROLE,
    QueueCounts,
    QueueStore,
    queue_names,
)
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)


def known_queue(name: str) -> str:
    """`name` if a contract declares that queue; NotFound otherwise."""
    if name not in queue_names():
        raise NotFound(f"no queue named {name!r} (queues: {', '.join(queue_names())})")
    return name


def _queue_out(
    counts: QueueCounts, workers: int, settings: Settings, **extra: Any
) -> dict[str, Any]:
    out = asdict(counts)
    name = out.pop("queue")
    return {
        "name": name,
        **out,
        "total": counts.total,
        "workers": workers,
        "concurrency": queue_concurrency(settings, name),
        **extra,
    }


def _workers(store: QueueStore, name: str, settings: Settings) -> int:
    now = utcnow().timestamp()
    return len(store.alive(name, now, settings.heartbeat_timeout_seconds))


def list_queues(store: QueueStore, settings: Settings) -> list[dict[str, Any]]:
    """Every queue's counts."""
    return [
        _queue_out(store.counts(name), _workers(store, name, settings), settings)
        for name in queue_names()
    ]


def queue_detail(
    store: QueueStore, settings: Settings, name: str, *, state: str, offset: int, limit: int
) -> dict[str, Any]:
    """A queue's counts and one page of its jobs in `state`."""
    known_queue(name)
    page = store.jobs(name, state, offset=offset, limit=limit)
    following = offset + len(page.jobs)
    return _queue_out(
        store.counts(name),
        _workers(store, name, settings),
        settings,
        state=state,
        jobs=[asdict(job) for job in page.jobs],
        jobs_total=page.total,
        offset=offset,
        limit=limit,
        next_offset=following if page.jobs and following < page.total else None,
    )


def retry_failed(store: QueueStore, name: str, ids: Sequence[str] | None) -> dict[str, Any]:
    """Put dead letters back on their queue (all, or those with `ids`)."""
    known_queue(name)
    unique = list(dict.fromkeys(ids)) if ids is not None else None
    moved = store.retry_failed(name, unique)
    log.info("admin: %d dead letter(s) of %s put back on the queue", len(moved), name)
    missing = sorted(set(unique) - set(moved)) if unique is not None else []
    return {"retried": len(moved), "ids": moved, "not_found": missing}


def clear(store: QueueStore, name: str, state: str) -> dict[str, Any]:
    """Drop the jobs of one state, or of every clearable state (`all`)."""
    known_queue(name)
    states = CLEARABLE if state == "all" else (state,)
    cleared = {s: store.clear(name, s) for s in states}
    log.info("admin: cleared %s of %s: %s", state, name, cleared)
    note = None
    if "delayed" in states and store.counts(name).delayed:
        note = (
            "delayed jobs that a worker already holds until their time were not dropped; "
            "they run when due"
        )
    return {"cleared": cleared, "note": note}


def run_action(
    store: QueueStore, name: str, action: str, job_ids: Sequence[str] | None
) -> dict[str, Any]:
    """Seed 004's actions, mapped onto retry and clear."""
    if action in ("retry_failed", "retry_specific"):
        return retry_failed(store, name, job_ids if action == "retry_specific" else None)
    return clear(store, name, action.removeprefix("clear_"))


def admin_health(
    engine: Engine, broker: Broker, store: QueueStore, settings: Settings
) -> dict[str, Any]:
    """The system's verdict: database and broker reachable, each queue drained, the
    scheduler alive and nothing due left waiting."""
    checks = readiness(engine, broker)
    database = "ok" if checks["database"] == "ok" else "unreachable"
    broker_state = "ok" if checks["broker"] == "ok" else "unreachable"
    now = utcnow()
    if database != "ok" or broker_state != "ok":
        down = [n for n, s in (("database", database), ("broker", broker_state)) if s != "ok"]
        return {
            "status": UNHEALTHY,
            "checked_at": now,
            "problems": [f"{what} unreachable" for what in down],
            "database": database,
            "broker": broker_state,
            "schedulers": 0,
            "oldest_due_target_age_seconds": None,
            "targets": {},
            "accounts_needing_reauth": 0,
            "queues": [],
        }
    reading = read_system(engine, store, settings, now)
    verdict: Verdict = assess(reading, settings)
    if checks["migrations"] != "current":
        verdict.worse(DEGRADED, f"database migrations are {checks['migrations']}")
    return {
        "status": verdict.status,
        "checked_at": now,
        "problems": verdict.problems,
        "database": database,
        "broker": broker_state,
        "schedulers": len(reading.workers.get(SCHEDULER_ROLE, [])),
        "oldest_due_target_age_seconds": round(reading.oldest_due_seconds, 3),
        "targets": reading.targets,
        "accounts_needing_reauth": sum(
            n for (_, s), n in reading.accounts.items() if s == AccountStatus.NEEDS_REAUTH
        ),
        "queues": [
            _queue_out(h.counts, h.workers, settings, status=h.status, problems=h.problems)
            for h in verdict.queues
        ],
    }
