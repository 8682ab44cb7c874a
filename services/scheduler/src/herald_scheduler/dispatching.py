"""The scheduler's work per tick, as plain methods: turn due rows into publish messages.

- dispatch_due: claims due targets (scheduled or retrying) in batches, marks them queued with
  a new version, commits, then hands them to the Sender, which sends one message each on
  their second (sending.py).
- resend_lost: a target queued for REQUEUE_AFTER_SECONDS whose message the broker no longer
  holds (never sent, lost with Redis, dead-lettered) is sent again at the same version; one
  whose message is still waiting, however long the queue, is left alone (if a lost message
  turns up after all, the claim lets one through).
- reconcile_stuck: a target left publishing (its worker died mid-call) is settled with the
  platform, never blindly posted again.
- token refreshes that are due go to the token-refresh queue (refreshing.py), and the cron
  entries (cron_entries: the weekly full refresh, the clean-up of old job records and
  attempts) fire once across replicas (cron.py).

Each query reads one partial index range bounded by LIMIT, so a tick costs what is due,
not what is scheduled. Every change of a target goes through herald_common.lifecycle. Two
schedulers can run: on PostgreSQL `FOR UPDATE SKIP LOCKED` keeps their batches apart; on SQLite
the write lock does; and the publisher's claim is the last guard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dramatiq.broker import Broker
from sqlalchemy import and_, delete, or_
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_common import lifecycle, webhooks
from herald_common.contracts import PUBLISH
from herald_common.db import session_scope, skip_locked
from herald_common.jobs import resend_stale
from herald_common.lifecycle import Queued
from herald_common.metrics import PUBLISH_MESSAGES_RESENT
from herald_common.models import Attempt, IdempotencyKey, Target, TargetStatus
from herald_common.models.idempotency import IDEMPOTENCY_TTL
from herald_common.platforms import PlatformRegistry
from herald_common.queues import SentMessage, queue_names, queue_store
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.tokens import request_refresh_all
from herald_common.webhooks import Events
from herald_scheduler import analytics, approvals
from herald_scheduler.cron import Cron, CronEntry
from herald_scheduler.refreshing import RefreshDispatcher
from herald_scheduler.sending import Sender

log = logging.getLogger(__name__)

#: One clean-up firing deletes at most CLEANUP_BATCHES batches of ATTEMPTS_BATCH attempts.
CLEANUP_BATCHES, ATTEMPTS_BATCH = 10, 5000

#: queued_at given to targets whose message could not be sent: resend_lost picks them up first.
NEVER_SENT = datetime(1970, 1, 1, tzinfo=UTC)
#: What identifies a publish message: its payload's target and version.
PUBLISH_KEY = ("target_id", "version")
#: Queued targets whose message one resend_lost run looks for (one pass over the broker's
#: messages serves them all).
LOST_CHECK_BATCH = 5000
#: resend_lost looks at most this often (and at least four times per REQUEUE_AFTER_SECONDS).
LOST_CHECK_EVERY_SECONDS = 2.0


@dataclass
class TickReport:
    """What one tick did."""

    dispatched: int = 0
    resent: int = 0
    reconciled: int = 0
    send_failed: int = 0
    refreshes: int = 0
    cron: list[str] = field(default_factory=list)
    #: What the periodic sweeps did (jobs resent, approvals reminded, analytics pulls sent).
    sweeps: dict[str, int] = field(default_factory=dict)


@dataclass
class Sweep:
    """Work the scheduler does every `every` seconds rather than every tick: its queries are
    cheap but need not run four times a second. `run(now)` returns how much it did."""

    name: str
    every: float
    run: Callable[[datetime], int]
    last: float = field(default=float("-inf"))


@dataclass
class Dispatcher:
    """Dispatches due targets; collaborators handed in."""

    engine: Engine
    broker: Broker
    platforms: PlatformRegistry
    settings: Settings
    clock: Callable[[], datetime] = field(default=utcnow)
    refreshes: RefreshDispatcher | None = None
    cron: Cron | None = None
    sweeps: list[Sweep] = field(default_factory=list)
    sender: Sender | None = None  # built on the broker when not given
    events: Events | None = None  # built on the engine and broker when not given
    #: Where resend_lost's walk over long-queued targets has got to (queued_at, id), and when
    #: it last looked (time.monotonic()).
    _lost_cursor: tuple[datetime, str] | None = field(default=None, init=False, repr=False)
    _lost_checked: float = field(default=float("-inf"), init=False, repr=False)

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = Events(self.engine, self.broker, self.settings)
        if self.sender is None:
            self.sender = Sender(self.broker, self._mark_unsent, clock=self.clock)
        if self.refreshes is None:
            self.refreshes = RefreshDispatcher(self.engine, self.broker, self.settings)
        if self.cron is None:
            self.cron = Cron(self.engine, cron_entries(self))
        if not self.sweeps:
            self.sweeps = sweeps(self)

    def tick(self) -> TickReport:
        """One pass: dispatch what is due, resend what was lost, reconcile what is stuck,
        send the token refreshes that are due, and fire the cron entries that are due."""
        report = TickReport()
        now = self.clock()
        report.dispatched, report.send_failed = self.dispatch_due(now)
        # The broker just failed: leave the resending to a later tick.
        if not report.send_failed:
            report.resent, report.send_failed = self.resend_lost(now)
        report.reconciled = self.reconcile_stuck(now)
        assert self.refreshes is not None and self.cron is not None
        report.cron = self.cron.fire_due(now)
        if not report.send_failed:
            report.refreshes, failed = self.refreshes.dispatch_due(now)
            report.send_failed += failed
        report.sweeps = self.run_sweeps(now)
        return report

    def run_sweeps(self, now: datetime) -> dict[str, int]:
        """Run the sweeps whose time has come; one failing does not stop the others."""
        done: dict[str, int] = {}
        clock = time.monotonic()
        for sweep in self.sweeps:
            if clock - sweep.last < sweep.every:
                continue
            sweep.last = clock
            try:
                if count := sweep.run(now):
                    done[sweep.name] = count
            except Exception:
                log.exception("sweep %s failed", sweep.name)
        return done

    def resend_stale_jobs(self, now: datetime) -> int:
        """Jobs whose message was lost or whose worker died go back on their queue."""
        outcome = resend_stale(self.engine, self.broker, self.settings, now, events=self.events)
        return outcome.resent + outcome.requeued + outcome.failed

    def request_all_refreshes(self, now: datetime) -> str:
        """The weekly full token refresh (a cron entry)."""
        with session_scope(self.engine) as session:
            asked = request_refresh_all(session, self.platforms, now)
        return f"{asked} account(s) asked to refresh"

    def clean_up(self, now: datetime) -> str:
        """Drop old records of finished jobs, and attempts older than their retention
        (a cron entry).

        It runs inside a tick, so one firing does a bounded amount (CLEANUP_BATCHES batches of
        ATTEMPTS_BATCH attempts): a backlog, as after lowering the retention, is worked off over the
        following firings while posts keep going out.
        """
        store = queue_store(self.broker)
        older_than = now.timestamp() - self.settings.job_records_retention_seconds
        records = sum(
            store.prune_records(
                queue, older_than=older_than, keep=self.settings.job_records_max_per_queue
            )
            for queue in queue_names()
        )
        cutoff = now - timedelta(days=self.settings.attempts_retention_days)
        attempts, left = 0, False
        for _ in range(CLEANUP_BATCHES):
            with session_scope(self.engine) as session:
                ids = select(Attempt.id).where(Attempt.finished_at < cutoff).limit(ATTEMPTS_BATCH)  # type: ignore[operator]
                deleted: int = session.execute(
                    delete(Attempt).where(Attempt.id.in_(ids.scalar_subquery()))  # type: ignore[attr-defined]
                ).rowcount  # type: ignore[attr-defined]
            attempts += deleted
            left = deleted == ATTEMPTS_BATCH
            if not left:
                break
        with session_scope(self.engine) as session:
            keys: int = session.execute(
                delete(IdempotencyKey).where(IdempotencyKey.created_at < now - IDEMPOTENCY_TTL)  # type: ignore[arg-type]
            ).rowcount  # type: ignore[attr-defined]
        more = "; more left for the next run" if left else ""
        return (
            f"{records} job record(s), {attempts} attempt(s) and {keys} idempotency key(s)"
            f" dropped{more}"
        )

    def dispatch_due(self, now: datetime) -> tuple[int, int]:
        """Claim and send targets due by now + lookahead; (sent, failed to send)."""
        horizon = now + timedelta(seconds=self.settings.scheduler_lookahead_seconds)
        with self.engine.begin() as db:
            claimed = lifecycle.queue_due(db, horizon, self.settings.scheduler_batch_size, now)
        # Committed: only now may the messages go out (commit, then send).
        return self._send(claimed, now) if claimed else (0, 0)

    def resend_lost(self, now: datetime) -> tuple[int, int]:
        """Send again the targets queued for longer than requeue_after whose message the broker
        no longer holds; (sent, failed to send).

        A long queue is not a lost message: one still waiting behind thousands is left alone,
        however old. The walk over long-queued targets goes on from where the last run stopped,
        so every one is looked at in turn, and one pass over the broker's messages serves a
        whole batch.
        """
        # Often enough to resend within a fraction of requeue_after, and never every tick: with
        # a long queue each look reads every message in it.
        every = min(self.settings.requeue_after_seconds / 4, LOST_CHECK_EVERY_SECONDS)
        if time.monotonic() - self._lost_checked < every:
            return 0, 0
        self._lost_checked = time.monotonic()
        cutoff = now - timedelta(seconds=self.settings.requeue_after_seconds)
        query = (
            select(Target.id, Target.version, Target.due_at, Target.queued_at)
            .where(
                Target.status == TargetStatus.QUEUED,
                col(Target.queued_at) < cutoff,
                # Not one the sender holds until its second (it is not in the broker yet).
                col(Target.due_at) <= now,
            )
            .order_by(col(Target.queued_at), col(Target.id))
            .limit(LOST_CHECK_BATCH)
        )
        if self._lost_cursor is not None:
            at, last = self._lost_cursor
            query = query.where(
                or_(
                    col(Target.queued_at) > at,
                    and_(col(Target.queued_at) == at, col(Target.id) > last),
                )
            )
        with session_scope(self.engine) as session:
            # A queued target always has its queued_at (the filter says so).
            rows = [(i, v, d, q) for i, v, d, q in session.exec(query).all() if q is not None]
        self._lost_cursor = (rows[-1][3], rows[-1][0]) if len(rows) == LOST_CHECK_BATCH else None
        if not rows:
            return 0, 0
        sent = {
            f"{target_id}:{version}": (Queued(target_id, version, due_at), queued_at)
            for target_id, version, due_at, queued_at in rows
        }
        never = [key for key, (_, queued_at) in sent.items() if queued_at <= NEVER_SENT]
        asked = [SentMessage(key, queued_at) for key, (_, queued_at) in sent.items()]
        missing = queue_store(self.broker).missing(PUBLISH.queue, PUBLISH_KEY, asked)
        lost_keys = dict.fromkeys([*never, *(m.key for m in missing)])
        if not lost_keys:
            return 0, 0
        # Taken with a compare-and-set on the time it was queued, so that of two schedulers
        # only one sends it again.
        lost: list[Queued] = []
        with self.engine.begin() as db:
            for key in lost_keys:
                item, queued_at = sent[key]
                if lifecycle.move(
                    db,
                    item.target_id,
                    TargetStatus.QUEUED,
                    item.version,
                    bump=False,
                    where=[col(Target.queued_at) == queued_at],
                    queued_at=now,
                ):
                    lost.append(item)
        if not lost:
            return 0, 0
        log.warning(
            "scheduler: the broker no longer holds the message of %d queued target(s); "
            "sending again",
            len(lost),
        )
        sent_count, failed = self._send(lost, now)
        PUBLISH_MESSAGES_RESENT.inc(sent_count)
        return sent_count, failed

    def reconcile_stuck(self, now: datetime) -> int:
        """Settle targets left publishing longer than reconcile_after."""
        cutoff = now - timedelta(seconds=self.settings.reconcile_after_seconds)
        with session_scope(self.engine) as session:
            query = (
                select(Target.id, Target.version)
                .where(
                    Target.status == TargetStatus.PUBLISHING,
                    col(Target.started_at) < cutoff,
                )
                .order_by(col(Target.started_at))
                .limit(self.settings.scheduler_batch_size)
            )
            stuck = session.exec(skip_locked(self.engine, query)).all()
        # Each one taken over with a compare-and-set (a new version and start time), so a second
        # scheduler, or the original worker if it was only slow, cannot also settle it.
        taken: list[tuple[str, int]] = []
        for target_id, version in stuck:
            with self.engine.begin() as db:
                new_version = lifecycle.take_over(db, target_id, version, now)
            if new_version is not None:
                taken.append((target_id, new_version))
        settled = 0
        for target_id, version in taken:
            status = lifecycle.reconcile(
                self.engine,
                self.platforms,
                self.settings,
                target_id=target_id,
                claimed_version=version,
                reason=(
                    "the worker stopped while publishing (no result after "
                    f"{self.settings.reconcile_after_seconds:.0f} s)"
                ),
                events=self.events,
            )
            if status is not None:
                settled += 1
                log.warning("scheduler: reconciled stuck target %s → %s", target_id, status)
        return settled

    def _send(self, items: list[Queued], now: datetime) -> tuple[int, int]:
        assert self.sender is not None
        return self.sender.submit(items)

    def _mark_unsent(self, items: list[Queued]) -> None:
        """Stamp targets whose message could not be sent, so the next look sends them first."""
        self._lost_cursor, self._lost_checked = None, float("-inf")
        with self.engine.begin() as db:
            for item in items:
                lifecycle.stamp(
                    db, item.target_id, TargetStatus.QUEUED, item.version, queued_at=NEVER_SENT
                )


def sweeps(dispatcher: Dispatcher) -> list[Sweep]:
    """Every periodic sweep the scheduler runs: the one place they are declared."""
    engine, broker, settings = dispatcher.engine, dispatcher.broker, dispatcher.settings
    return [
        Sweep("jobs", 5.0, dispatcher.resend_stale_jobs),
        Sweep("approvals", 5.0, lambda now: approvals.sweep(engine, broker, settings, now)),
        Sweep("analytics", 5.0, lambda now: analytics.sweep(engine, broker, settings, now)),
        # Webhook retries wait at least 10 s; a first message the broker lost, a lease (2 min).
        Sweep("webhooks", 2.0, lambda now: webhooks.send_due(engine, broker, now)),
    ]


def cron_entries(dispatcher: Dispatcher) -> list[CronEntry]:
    """Every calendar job the scheduler runs; their names and times are the settings'
    `cron_schedule`, which the operator's console reads too."""
    actions = {
        "token-refresh-weekly": dispatcher.request_all_refreshes,
        "clean-up": dispatcher.clean_up,
    }
    return [
        CronEntry(name, expression, actions[name])
        for name, expression in dispatcher.settings.cron_schedule().items()
    ]
