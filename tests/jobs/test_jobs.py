"""The job life cycle (herald_common.jobs) on SQLite and PostgreSQL: one run at a time,
retries with the contract's budget, and nothing lost to a dead worker or a lost message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.contracts import GENERATE_IMAGE, GENERATE_MONTHLY
from herald_common.db import session_scope
from herald_common.errors import InvalidInput
from herald_common.jobs import (
    NEVER_SENT,
    JobFailed,
    JobRun,
    create_job,
    lost_after,
    resend_stale,
    run_job,
    send_job,
)
from herald_common.models import Job, JobStatus
from herald_common.timeutil import utcnow
from tests.conftest import add_tenant, make_settings

IMAGE = {"prompt": "Spring sale", "style": "minimalist", "width": 640, "height": 480}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each test runs on both databases."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


def new_job(engine: Engine, payload: dict[str, Any] | None = None) -> Job:
    tenant_id = add_tenant(engine)
    with session_scope(engine) as session:
        return create_job(session, tenant_id, GENERATE_IMAGE, payload or IMAGE)


def job(engine: Engine, job_id: str) -> Job:
    with session_scope(engine) as session:
        row = session.get(Job, job_id)
        assert row is not None
        return row


def test_a_job_is_written_queued_with_its_checked_payload(engine) -> None:
    # When a job is created
    created = new_job(engine)

    # Then it is queued, and its payload is the contract's, with its tenant and its own id
    row = job(engine, created.id)
    assert (row.status, row.kind, row.attempts, row.progress) == ("queued", "image.generate", 0, 0)
    assert row.payload["job_id"] == row.id
    assert row.payload["tenant_id"] == row.tenant_id
    assert row.payload["width"] == 640


def test_a_payload_that_breaks_the_contract_writes_nothing(engine) -> None:
    tenant_id = add_tenant(engine)

    # When the payload has a style the contract does not know
    with pytest.raises(InvalidInput) as raised, session_scope(engine) as session:
        create_job(session, tenant_id, GENERATE_IMAGE, {**IMAGE, "style": "baroque"})

    # Then the error names the field, and no job was written
    assert [e.field for e in raised.value.errors] == ["style"]
    with session_scope(engine) as session:
        assert session.exec(select(Job)).all() == []


def test_a_run_claims_the_job_reports_progress_and_keeps_its_result(engine) -> None:
    created = new_job(engine)
    seen: list[tuple[str, int]] = []

    def work(run: JobRun) -> dict[str, Any]:
        row = job(engine, run.job_id)
        seen.append((row.status, row.attempts))
        run.progress(1, total=4)
        seen.append((job(engine, run.job_id).status, job(engine, run.job_id).progress))
        return {"image_id": "img-1"}

    # When it runs
    run_job(engine, GENERATE_IMAGE, created.id, work)

    # Then it ran as its first attempt, showed its progress, and ended complete
    assert seen == [("running", 1), ("running", 1)]
    row = job(engine, created.id)
    assert (row.status, row.progress, row.total) == ("succeeded", 4, 4)
    assert row.result == {"image_id": "img-1"}
    assert row.started_at is not None and row.finished_at is not None


def test_a_duplicate_message_finds_nothing_to_do(engine) -> None:
    created = new_job(engine)
    runs: list[int] = []
    run_job(engine, GENERATE_IMAGE, created.id, lambda run: runs.append(run.attempt) or {})

    # When the same message arrives again (a resend that raced the first)
    run_job(engine, GENERATE_IMAGE, created.id, lambda run: runs.append(run.attempt) or {})

    # Then the work ran once
    assert runs == [1]
    assert job(engine, created.id).attempts == 1


def test_a_job_failed_error_fails_at_once_with_its_reason(engine) -> None:
    created = new_job(engine)

    def work(run: JobRun) -> None:
        raise JobFailed("the brand was deleted")

    # When the work says trying again cannot help
    run_job(engine, GENERATE_IMAGE, created.id, work)

    # Then the job failed with that reason, after one attempt
    row = job(engine, created.id)
    assert (row.status, row.error, row.attempts) == ("failed", "the brand was deleted", 1)


def test_an_unexpected_error_goes_back_to_the_queue_until_the_tries_are_spent(engine) -> None:
    created = new_job(engine)
    tries = GENERATE_IMAGE.retry.max_retries + 1

    def work(run: JobRun) -> None:
        raise ConnectionError("access_token=abc123 refused")

    # When every try fails (Dramatiq would retry the message each time it is raised)
    for attempt in range(1, tries):
        with pytest.raises(ConnectionError):
            run_job(engine, GENERATE_IMAGE, created.id, work)
        row = job(engine, created.id)
        # Then between tries it waits queued, saying what went wrong (secrets masked)
        assert (row.status, row.attempts) == ("queued", attempt)
        assert f"try {attempt} of {tries} failed" in (row.error or "")
        assert "abc123" not in (row.error or "")
    run_job(engine, GENERATE_IMAGE, created.id, work)

    # And the last try fails it for good, without raising (no dead letter to retry blindly)
    row = job(engine, created.id)
    assert (row.status, row.attempts) == ("failed", tries)
    assert (row.error or "").startswith(f"failed after {tries} tries")
    assert "abc123" not in (row.error or "")


def test_a_job_the_broker_could_not_take_is_marked_never_sent(engine) -> None:
    created = new_job(engine)

    class DownBroker(StubBroker):
        def enqueue(self, message: Any, *, delay: int | None = None) -> Any:
            raise ConnectionError("redis is away")

    # When the broker refuses the message
    sent = send_job(engine, DownBroker(), created)

    # Then the job stays queued, first in line for the scheduler
    assert sent is False
    row = job(engine, created.id)
    assert (row.status, row.queued_at) == ("queued", NEVER_SENT)


def test_the_scheduler_sends_lost_jobs_again(engine) -> None:
    created = new_job(engine)
    broker = StubBroker()
    broker.declare_queue(GENERATE_IMAGE.queue)
    settings = make_settings(job_requeue_after_seconds=60)
    now = utcnow()
    # An image job's message counts as lost after twice its time limit (5 min): a worker may
    # hold it prefetched while its threads run long jobs
    lost = lost_after(settings, GENERATE_IMAGE)
    assert lost == timedelta(minutes=10)

    # Given a job sent just now, nothing is resent, nor just before it counts as lost
    assert resend_stale(engine, broker, settings, now).resent == 0
    assert resend_stale(engine, broker, settings, now + lost - timedelta(seconds=5)).resent == 0
    # When its message has been gone longer than that
    later = now + lost + timedelta(seconds=1)
    outcome = resend_stale(engine, broker, settings, later)

    # Then it is sent again, once, and stamped so the next pass leaves it
    assert outcome.resent == 1
    assert broker.queues[GENERATE_IMAGE.queue].qsize() == 1
    assert resend_stale(engine, broker, settings, later).resent == 0
    assert job(engine, created.id).queued_at == later


def test_a_job_whose_worker_died_is_put_back_then_failed_when_its_tries_are_spent(
    engine,
) -> None:
    created = new_job(engine)
    broker = StubBroker()
    broker.declare_queue(GENERATE_IMAGE.queue)
    settings = make_settings(job_stale_grace_seconds=10)
    limit = timedelta(milliseconds=GENERATE_IMAGE.time_limit_ms, seconds=10)
    tries = GENERATE_IMAGE.retry.max_retries + 1

    def die(run: JobRun) -> None:
        raise SystemExit  # the process went away mid-run: nothing records the outcome

    started = utcnow()
    for attempt in range(1, tries + 1):
        # Given a run that started and never finished
        with pytest.raises(SystemExit):
            run_job(engine, GENERATE_IMAGE, created.id, die, clock=lambda: started)
        assert job(engine, created.id).status == "running"
        # Then it is left alone within its time limit
        assert resend_stale(engine, broker, settings, started + limit / 2).requeued == 0
        # And taken back past it: queued and sent again while tries are left, failed after
        outcome = resend_stale(engine, broker, settings, started + limit + timedelta(seconds=1))
        row = job(engine, created.id)
        if attempt < tries:
            assert (outcome.requeued, row.status, row.attempts) == (1, "queued", attempt)
        else:
            assert (outcome.failed, row.status) == (1, "failed")
            assert "its worker stopped" in (row.error or "")
    assert broker.queues[GENERATE_IMAGE.queue].qsize() == tries - 1


def test_an_actor_runs_the_job_once_through_dramatiq(engine) -> None:
    # Given an actor declared from the contract, on the stub broker with a worker
    broker = StubBroker()
    ran: list[str] = []

    def generate_monthly_content(**payload: Any) -> None:
        run_job(engine, GENERATE_MONTHLY, payload["job_id"], lambda run: ran.append(run.job_id))

    dramatiq.actor(generate_monthly_content, broker=broker, **GENERATE_MONTHLY.actor_options())
    tenant_id = add_tenant(engine)
    with session_scope(engine) as session:
        created = create_job(
            session,
            tenant_id,
            GENERATE_MONTHLY,
            {"brand_id": "b1", "month": 1, "year": 2030, "count": 3, "platforms": ["sandbox"]},
        )
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        # When it is sent twice
        assert send_job(engine, broker, created)
        assert send_job(engine, broker, created)
        broker.join(GENERATE_MONTHLY.queue)
        worker.join()
    finally:
        worker.stop()

    # Then it ran once and succeeded
    assert ran == [created.id]
    assert job(engine, created.id).status == "succeeded"


def test_a_never_sent_job_is_first_in_line(engine) -> None:
    first, second = new_job(engine), new_job(engine)
    with session_scope(engine) as session:
        session.execute(update(Job).where(Job.id == second.id).values(queued_at=NEVER_SENT))
        session.execute(
            update(Job).where(Job.id == first.id).values(queued_at=utcnow() - timedelta(hours=1))
        )
    broker = StubBroker()
    broker.declare_queue(GENERATE_IMAGE.queue)

    # When the scheduler may resend only one
    resend_stale(engine, broker, make_settings(), utcnow(), limit=1)

    # Then it is the one that was never sent
    message = dramatiq.Message.decode(broker.queues[GENERATE_IMAGE.queue].get_nowait())
    assert message.kwargs["job_id"] == second.id
    assert broker.queues[GENERATE_IMAGE.queue].qsize() == 0
    assert job(engine, second.id).status == JobStatus.QUEUED
