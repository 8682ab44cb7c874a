"""One look at the whole system, and what it says about its health.

`read_system` gathers what the scheduler exports as gauges and what `GET /v1/admin/health`
reports: each queue's counts, the processes beating for each queue and for the scheduler, the
age of the oldest target that is due and not published, and targets and accounts by status.
`assess` turns a reading into `healthy`, `degraded` or `unhealthy`, with the reasons.

Every query reads a partial index or a small table, so a reading costs the same with a
million posts scheduled as with none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.db import session_scope
from herald_common.models import Account, Target, TargetStatus
from herald_common.queues import SCHEDULER_ROLE, QueueCounts, QueueStore, queue_names
from herald_common.settings import Settings

#: Target states worth watching: work in flight, and what waits for a person.
WATCHED_TARGET_STATES = (
    TargetStatus.QUEUED,
    TargetStatus.PUBLISHING,
    TargetStatus.RETRYING,
    TargetStatus.UNKNOWN,
)
#: Targets that are due and not yet out, grouped as the partial indexes on `targets` are:
#: their oldest says whether anything drains.
_UNPUBLISHED = (
    (TargetStatus.SCHEDULED, TargetStatus.RETRYING),
    (TargetStatus.QUEUED,),
    (TargetStatus.PUBLISHING,),
)
HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


@dataclass
class Reading:
    """What the system looked like at `at`."""

    at: datetime
    queues: dict[str, QueueCounts]
    workers: dict[str, list[str]]  # role (a queue, or "scheduler") → live processes
    oldest_due_seconds: float
    targets: dict[str, int]
    accounts: dict[tuple[str, str], int]  # (platform, status) → how many


@dataclass(kw_only=True)
class Judged:
    """A verdict: the worst status found, and every reason."""

    status: str = HEALTHY
    problems: list[str] = field(default_factory=list)

    def worse(self, status: str, problem: str) -> None:
        """Note a problem; the status becomes `status` if that is worse."""
        self.problems.append(problem)
        if _RANK[status] > _RANK[self.status]:
            self.status = status


@dataclass(kw_only=True)
class QueueHealth(Judged):
    """One queue's verdict."""

    counts: QueueCounts
    workers: int


@dataclass(kw_only=True)
class Verdict(Judged):
    """The system's verdict: overall (the worst of its queues' and its own), and per queue."""

    queues: list[QueueHealth]


def oldest_due_age(engine: Engine, now: datetime) -> float:
    """Seconds since the oldest target that is due and not yet published became due (0: none).

    With nothing draining (no publisher, a dead scheduler, a stuck broker), this grows by a
    second every second, whatever the processes say about themselves.
    """
    # One MIN per partial index (dispatchable, queued, publishing): each is a one-row index
    # read, where a single IN over all four states would scan the whole table.
    with session_scope(engine) as session:
        candidates = [
            session.exec(
                select(func.min(Target.due_at)).where(
                    Target.status.in_(states),  # type: ignore[attr-defined]
                    Target.due_at <= now,  # type: ignore[operator]
                )
            ).one()
            for states in _UNPUBLISHED
        ]
    oldest = min((c for c in candidates if c is not None), default=None)
    if oldest is None:
        return 0.0
    return max(0.0, (now - oldest).total_seconds())


def read_system(engine: Engine, store: QueueStore, settings: Settings, now: datetime) -> Reading:
    """Read the queues, the heartbeats and the database once."""
    stamp = now.timestamp()
    timeout = settings.heartbeat_timeout_seconds
    queues = {name: store.counts(name) for name in queue_names()}
    workers = {role: store.alive(role, stamp, timeout) for role in [*queues, SCHEDULER_ROLE]}
    with session_scope(engine) as session:
        targets = {  # one partial index each
            str(status): session.exec(
                select(func.count()).select_from(Target).where(Target.status == status)
            ).one()
            for status in WATCHED_TARGET_STATES
        }
        accounts = {
            (platform, status): count
            for platform, status, count in session.exec(
                select(Account.platform, Account.status, func.count())
                .where(Account.deleted_at.is_(None))  # type: ignore[union-attr]
                .group_by(Account.platform, Account.status)
            ).all()
        }
    return Reading(
        at=now,
        queues=queues,
        workers=workers,
        oldest_due_seconds=oldest_due_age(engine, now),
        targets=targets,
        accounts=accounts,
    )


def assess(reading: Reading, settings: Settings) -> Verdict:
    """healthy, degraded or unhealthy, per queue and overall, with the reasons."""
    required = set(settings.required_queues)
    verdicts = []
    for name, counts in reading.queues.items():
        health = QueueHealth(counts=counts, workers=len(reading.workers.get(name, [])))
        if counts.waiting >= settings.health_queue_waiting_unhealthy:
            health.worse(UNHEALTHY, f"{counts.waiting} message(s) waiting")
        elif counts.waiting >= settings.health_queue_waiting_degraded:
            health.worse(DEGRADED, f"{counts.waiting} message(s) waiting")
        if counts.failed:
            health.worse(DEGRADED, f"{counts.failed} dead letter(s)")
        if not health.workers and (name in required or counts.waiting or counts.delayed):
            health.worse(UNHEALTHY, "no live worker drains it")
        verdicts.append(health)
    verdict = Verdict(queues=verdicts)
    for health in verdicts:
        for problem in health.problems:
            verdict.worse(health.status, f"{health.counts.queue}: {problem}")
    if not reading.workers.get(SCHEDULER_ROLE):
        verdict.worse(UNHEALTHY, "no live scheduler: nothing due is being sent")
    age = reading.oldest_due_seconds
    if age >= settings.health_oldest_due_unhealthy_seconds:
        verdict.worse(UNHEALTHY, f"the oldest due target has waited {age:.0f} s")
    elif age >= settings.health_oldest_due_degraded_seconds:
        verdict.worse(DEGRADED, f"the oldest due target has waited {age:.0f} s")
    # Targets in `unknown` and accounts to reconnect are reported, not judged: they are each
    # tenant's to act on, and a large deployment always has a few.
    return verdict
