"""Jobs a client starts (a month of content, one regeneration, an image, an analytics pull):
the row is the record, the message only carries its id.

The life of a job:

1. `create_job` writes the row (`queued`) in the transaction that accepts the request, with
   the message's payload checked against the contract; nothing is sent yet.
2. After that commit, `send_job` enqueues it. If the broker is away the job stays `queued`,
   marked never sent, and the scheduler sends it (`resend_stale`), so an accepted job is never
   lost to a broker outage and the API never needs Redis to accept one.
3. The worker runs it through `run_job`: a compare-and-set claims it (`queued` → `running`,
   one more attempt), so a duplicate message (a resend that raced a slow first one) finds
   nothing to do. The work reports progress as it goes (`JobRun.progress`).
4. It ends `succeeded` with a result, or `failed` with a reason a person understands:
   `JobFailed` fails it at once; any other exception puts it back to `queued` and lets
   Dramatiq retry it with the contract's backoff, until the contract's retries are spent.
5. A worker that dies mid-run leaves it `running`; past the contract's time limit plus
   JOB_STALE_GRACE_SECONDS the scheduler puts it back on its queue (or fails it when its
   attempts are spent). Work that must not be done twice (a month's posts) keys what it
   writes by job, so a second run carries on where the first stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dramatiq.broker import Broker
from pydantic import ValidationError
from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import CursorResult, Engine
from sqlmodel import Session, col, select

from herald_common.contracts import CONTRACTS, Contract, send
from herald_common.db import session_scope
from herald_common.errors import InvalidInput, field_errors
from herald_common.logs import redact
from herald_common.metrics import JOB_DURATION, JOBS_FINISHED
from herald_common.models import Job, JobStatus
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

if TYPE_CHECKING:
    from herald_common.webhooks import Events

log = logging.getLogger(__name__)

#: queued_at of a job whose message could not be sent: the scheduler sends it first.
NEVER_SENT = datetime(1970, 1, 1, tzinfo=UTC)
#: How much of an unexpected error's text a job keeps (the traceback is in the worker's log).
MAX_ERROR_CHARS = 1000


class JobFailed(Exception):
    """Raised by a job's work when trying again cannot help; the reason is shown to users."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def contract_of(kind: str) -> Contract:
    """The contract whose job name is `kind`; KeyError when there is none."""
    for contract in CONTRACTS:
        if contract.job_name == kind:
            return contract
    raise KeyError(kind)


def create_job(
    session: Session,
    tenant_id: str,
    contract: Contract,
    payload: Mapping[str, Any],
    *,
    brand_id: str | None = None,
    post_id: str | None = None,
    total: int | None = None,
    now: datetime | None = None,
) -> Job:
    """A new `queued` job whose message payload is `payload` plus its tenant and job ids.

    InvalidInput (naming the field) when the payload breaks the contract's schema: nothing is
    written then.
    """
    now = now or utcnow()
    job = Job(
        tenant_id=tenant_id,
        kind=contract.job_name,
        brand_id=brand_id,
        post_id=post_id,
        total=total,
        created_at=now,
        updated_at=now,
        queued_at=now,
    )
    try:
        message = contract.payload.model_validate(
            {**payload, "tenant_id": tenant_id, "job_id": job.id}, strict=False
        )
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None
    job.payload = message.model_dump(mode="json")
    session.add(job)
    session.flush()
    return job


def send_job(engine: Engine, broker: Broker, job: Job) -> bool:
    """Enqueue a committed job's message; False (and the job marked never sent, for the
    scheduler to send) when the broker is away."""
    try:
        send(broker, contract_of(job.kind), job.payload)
    except Exception as exc:
        log.warning(
            "job %s (%s): could not enqueue (%s); the scheduler will send it",
            job.id,
            job.kind,
            type(exc).__name__,
        )
        with session_scope(engine) as session:
            session.execute(
                update(Job)
                .where(col(Job.id) == job.id, col(Job.status) == JobStatus.QUEUED)
                .values(queued_at=NEVER_SENT)
            )
        return False
    return True


@dataclass
class JobRun:
    """One run of a claimed job, handed to its work."""

    engine: Engine
    job_id: str
    tenant_id: str
    attempt: int
    payload: dict[str, Any]
    clock: Callable[[], datetime] = utcnow
    #: When the job was accepted: a later try can tell what earlier ones already did.
    created_at: datetime | None = None

    def progress(self, done: int, total: int | None = None, session: Session | None = None) -> None:
        """Report `done` of `total` units. Pass the session that wrote those units, so the
        count commits with them; without one it commits on its own."""
        values: dict[str, Any] = {"progress": done, "updated_at": self.clock()}
        if total is not None:
            values["total"] = total
        statement = (
            update(Job)
            .where(col(Job.id) == self.job_id, col(Job.status) == JobStatus.RUNNING)
            .values(**values)
        )
        if session is not None:
            session.execute(statement)
            return
        with session_scope(self.engine) as own:
            own.execute(statement)


def run_job(
    engine: Engine,
    contract: Contract,
    job_id: str,
    work: Callable[[JobRun], Mapping[str, Any] | None],
    *,
    clock: Callable[[], datetime] = utcnow,
    events: Events | None = None,
) -> None:
    """Claim job `job_id`, run `work`, and record how it ended (see the module's docstring);
    `events` tells the tenant's webhooks once it succeeded or failed.

    Raises only to have Dramatiq retry the message; a job that is not `queued` (a duplicate
    or stale message) is left alone.
    """
    now = clock()
    with session_scope(engine) as session:
        claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,  # type: ignore[operator]
                started_at=now,
                updated_at=now,
            )
        )
        job = session.get(Job, job_id) if claimed.rowcount else None
        if job is not None:
            session.refresh(job)
    if job is None:
        log.info("job %s: not queued (a duplicate or stale message); nothing to do", job_id)
        return
    run = JobRun(
        engine, job.id, job.tenant_id, job.attempts, dict(job.payload), clock, job.created_at
    )
    started = time.monotonic()
    try:
        result = work(run)
    except JobFailed as exc:
        log.warning("job %s (%s) failed: %s", job.id, job.kind, exc.reason)
        _finish(engine, job.id, JobStatus.FAILED, clock(), error=exc.reason)
        _observe(job.kind, JobStatus.FAILED, started)
        if events is not None:
            events.job_finished(job, "failed", {"error": exc.reason})
        return
    except Exception as exc:
        summary = redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        tries = contract.retry.max_retries + 1
        if job.attempts >= tries:
            log.exception("job %s (%s) failed on its last try", job.id, job.kind)
            reason = f"failed after {job.attempts} tries; the last error: {summary}"
            _finish(engine, job.id, JobStatus.FAILED, clock(), error=reason)
            _observe(job.kind, JobStatus.FAILED, started)
            if events is not None:
                events.job_finished(job, "failed", {"error": reason})
            return
        log.warning("job %s (%s) try %d failed: %s", job.id, job.kind, job.attempts, summary)
        # Dramatiq's retry brings it back within max_backoff; the scheduler resends only after.
        back = clock() + timedelta(milliseconds=contract.retry.max_backoff_ms)
        with session_scope(engine) as session:
            session.execute(
                update(Job)
                .where(col(Job.id) == job.id, col(Job.status) == JobStatus.RUNNING)
                .values(
                    status=JobStatus.QUEUED,
                    error=f"try {job.attempts} of {tries} failed ({summary}); trying again",
                    queued_at=back,
                    updated_at=clock(),
                )
            )
        JOB_DURATION.labels(job.kind).observe(time.monotonic() - started)
        raise
    _finish(engine, job.id, JobStatus.SUCCEEDED, clock(), result=dict(result or {}))
    _observe(job.kind, JobStatus.SUCCEEDED, started)
    if events is not None:
        events.job_finished(job, "succeeded", {"result": dict(result or {})})


def _observe(kind: str, status: JobStatus, started: float) -> None:
    """Count a run that ended (after its outcome committed)."""
    JOBS_FINISHED.labels(kind, status.value).inc()
    JOB_DURATION.labels(kind).observe(time.monotonic() - started)


def _finish(
    engine: Engine,
    job_id: str,
    status: JobStatus,
    now: datetime,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    with session_scope(engine) as session:
        values: dict[str, Any] = {
            "status": status,
            "finished_at": now,
            "updated_at": now,
            "error": error,
        }
        if result is not None:
            values["result"] = result
        if status == JobStatus.SUCCEEDED:
            # A job that knew its size is complete; one that did not, reports what it did.
            values["progress"] = func.coalesce(col(Job.total), col(Job.progress))
        session.execute(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
            .values(**values)
        )


@dataclass(frozen=True)
class Resent:
    """What one pass of `resend_stale` did."""

    resent: int = 0
    requeued: int = 0
    failed: int = 0
    send_failed: int = 0


def resend_stale(
    engine: Engine,
    broker: Broker,
    settings: Settings,
    now: datetime,
    *,
    limit: int = 100,
    events: Events | None = None,
) -> Resent:
    """Send again jobs whose message was lost, and put back those whose worker died.

    A job `queued` and never started for longer than `lost_after` (or never sent at all) lost
    its message: it is sent again (the claim lets one copy through). A job `running` past its contract's time limit plus
    JOB_STALE_GRACE_SECONDS lost its worker: it goes back to `queued` and is sent again, or
    fails when its tries are spent (and `events` tells the tenant's webhooks).
    """
    resend: list[Job] = []
    gave_up: list[tuple[Job, str]] = []
    requeued = failed = 0
    with session_scope(engine) as session:
        queued = session.exec(
            select(Job)
            .where(col(Job.status) == JobStatus.QUEUED, _lost(settings, now))
            .order_by(col(Job.queued_at))
            .limit(limit)
        ).all()
        for job in queued:
            if _move(session, job, JobStatus.QUEUED, now, queued_at=now):
                resend.append(job)
        shortest = min(c.time_limit_ms for c in CONTRACTS)
        running = session.exec(
            select(Job)
            .where(
                col(Job.status) == JobStatus.RUNNING,
                col(Job.started_at)
                < now - timedelta(milliseconds=shortest, seconds=settings.job_stale_grace_seconds),
            )
            .order_by(col(Job.started_at))
            .limit(limit)
        ).all()
        for job in running:
            try:
                contract = contract_of(job.kind)
            except KeyError:  # a kind this version no longer runs: fail it, not the sweep
                reason = f"no worker runs {job.kind!r} jobs any more"
                failed += _move(session, job, JobStatus.FAILED, now, error=reason, finished_at=now)
                continue
            limit_at = timedelta(
                milliseconds=contract.time_limit_ms, seconds=settings.job_stale_grace_seconds
            )
            if job.started_at is None or job.started_at > now - limit_at:
                continue
            if job.attempts >= contract.retry.max_retries + 1:
                reason = (
                    f"its worker stopped while running it, {job.attempts} time(s); not tried again"
                )
                if _move(session, job, JobStatus.FAILED, now, error=reason, finished_at=now):
                    failed += 1
                    gave_up.append((job, reason))
            elif _move(
                session,
                job,
                JobStatus.QUEUED,
                now,
                queued_at=now,
                error=f"try {job.attempts}: its worker stopped; trying again",
            ):
                requeued += 1
                resend.append(job)
    if events is not None:  # committed: the tenants' webhooks may hear of it
        for job, reason in gave_up:
            events.job_finished(job, "failed", {"error": reason})
    send_failed = 0
    for job in resend:
        try:
            send(broker, contract_of(job.kind), job.payload)
        except Exception as exc:
            send_failed += 1
            log.warning("job %s: could not resend (%s)", job.id, type(exc).__name__)
    if resend or failed:
        log.info(
            "jobs: resent %d lost, put back %d whose worker stopped, failed %d",
            len(resend) - requeued,
            requeued,
            failed,
        )
    return Resent(len(resend) - requeued, requeued, failed, send_failed)


def lost_after(settings: Settings, contract: Contract) -> timedelta:
    """How long a queued job's message may go unclaimed before it counts as lost.

    At least JOB_REQUEUE_AFTER_SECONDS, and twice the contract's time limit: a worker holds
    prefetched messages while its threads run long jobs (a month of content runs up to 30 min),
    and resending those would only pile up duplicates for the claim to drop.
    """
    return max(
        timedelta(seconds=settings.job_requeue_after_seconds),
        2 * timedelta(milliseconds=contract.time_limit_ms),
    )


def _lost(settings: Settings, now: datetime) -> Any:
    """Queued jobs whose message was never sent, or is lost by its kind's measure."""
    kinds = {c.job_name: c for c in CONTRACTS}.values()
    return or_(
        col(Job.queued_at) == NEVER_SENT,
        *(
            and_(col(Job.kind) == c.job_name, col(Job.queued_at) < now - lost_after(settings, c))
            for c in kinds
        ),
    )


def _move(session: Session, job: Job, status: JobStatus, now: datetime, **values: Any) -> int:
    """Compare-and-set from the status and attempt count that were read."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Job)
        .where(
            col(Job.id) == job.id,
            col(Job.status) == job.status,
            col(Job.attempts) == job.attempts,
        )
        .values(status=status, updated_at=now, **values)
    )
    return int(result.rowcount)
