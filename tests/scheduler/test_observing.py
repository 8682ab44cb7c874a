"""The scheduler's gauges, the clean-up cron entry, and the publish counters, on SQLite and the
in-process broker."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from prometheus_client import REGISTRY
from sqlalchemy import func
from sqlmodel import select

from herald_common.broker import build_broker
from herald_common.db import session_scope
from herald_common.health import read_system
from herald_common.models import (
    Account,
    AccountStatus,
    Attempt,
    AttemptOutcome,
    IdempotencyKey,
    Target,
    TargetStatus,
)
from herald_common.platforms import PlatformRegistry, PublishRequest, PublishResult
from herald_common.platforms.sandbox import SandboxPlatform
from herald_common.queues import SCHEDULER_ROLE, queue_store
from herald_common.timeutil import utcnow
from herald_publisher.publishing import Publisher, Result
from herald_scheduler.observing import export
from tests.conftest import add_account, add_post, add_tenant, make_settings
from tests.scheduler.test_dispatching import dispatcher


@pytest.fixture
def broker() -> StubBroker:
    broker = build_broker(make_settings())
    assert isinstance(broker, StubBroker)
    return broker


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_reading_sets_every_gauge_zeros_included(sqlite_engine, broker) -> None:
    # Given a target due a minute ago, one in unknown, an X account needing re-auth,
    # 2 messages waiting on content and a live scheduler
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    add_post(sqlite_engine, tenant, [account], due_at=utcnow() - timedelta(minutes=1))
    _, [lost] = add_post(sqlite_engine, tenant, [account], due_at=utcnow() + timedelta(days=1))
    with session_scope(sqlite_engine) as session:
        session.add(
            Account(tenant_id=tenant, platform="x", handle="x", status=AccountStatus.NEEDS_REAUTH)
        )
        target = session.get(Target, lost)
        assert target is not None
        target.status = TargetStatus.UNKNOWN
    for n in range(2):
        broker.enqueue(Message("content", "generate", (), {"n": n}, {}))
    store = queue_store(broker)
    store.beat(SCHEDULER_ROLE, "host:1", time.time())
    settings = make_settings()

    # When the system is read and exported
    reading = read_system(sqlite_engine, store, settings, utcnow())
    export(reading)

    # I expect the gauges to say so, and zeros where there is nothing
    assert 60 <= gauge("herald_oldest_due_target_age_seconds") < 90
    assert gauge("herald_targets", status="unknown") == 1
    assert gauge("herald_targets", status="queued") == 0
    assert gauge("herald_accounts", platform="x", status="needs_reauth") == 1
    assert gauge("herald_accounts", platform="x", status="active") == 0
    assert gauge("herald_accounts", platform="sandbox", status="active") == 1
    assert gauge("herald_queue_messages", queue="content", state="waiting") == 2
    assert gauge("herald_queue_messages", queue="publish", state="failed") == 0
    assert gauge("herald_workers_alive", role="scheduler") == 1
    assert gauge("herald_workers_alive", role="publish") == 0


def test_clean_up_drops_old_job_records_and_old_attempts(sqlite_engine, broker) -> None:
    # Given two job records (one two days old), two attempts (one 400 days old) and two
    # idempotency keys (one 25 hours old)
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, [target] = add_post(sqlite_engine, tenant, [account])
    now = utcnow()
    with session_scope(sqlite_engine) as session:
        for number, age in ((1, timedelta(days=400)), (2, timedelta(days=1))):
            session.add(
                Attempt(
                    tenant_id=tenant,
                    target_id=target,
                    number=number,
                    started_at=now - age,
                    finished_at=now - age,
                    outcome=AttemptOutcome.PUBLISHED,
                )
            )
        for key, age in (("old", timedelta(hours=25)), ("new", timedelta(hours=23))):
            session.add(
                IdempotencyKey(tenant_id=tenant, key=key, fingerprint="f", created_at=now - age)
            )
    store = queue_store(broker)
    message = Message("content", "generate", (), {}, {})
    store.record_completed(message, finished_at=now.timestamp() - 2 * 86400, duration_ms=1)
    store.record_completed(
        message.copy(message_id="new"), finished_at=now.timestamp(), duration_ms=1
    )
    scheduler = dispatcher(sqlite_engine, broker)

    # When the clean-up runs
    result = scheduler.clean_up(now)

    # I expect the old record and the old attempt gone, the others kept
    assert result == "1 job record(s), 1 attempt(s) and 1 idempotency key(s) dropped"
    assert [j.id for j in store.jobs("content", "completed").jobs] == ["new"]
    with session_scope(sqlite_engine) as session:
        assert session.exec(select(func.count()).select_from(Attempt)).one() == 1
        assert session.exec(select(IdempotencyKey.key)).all() == ["new"]


def test_publish_counters_move_only_when_the_outcome_commits(sqlite_engine) -> None:
    # Given two queued targets, and a platform whose bookkeeping fails once in the outcome's
    # transaction (after the target's move was written in it)
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, [first] = add_post(sqlite_engine, tenant, [account])
    registry = PlatformRegistry(sqlite_engine)
    publisher = Publisher(engine=sqlite_engine, platforms=registry, settings=make_settings())
    failing = FailingBookkeeping(sqlite_engine)
    registry._adapters["sandbox"] = failing
    dispatcher(sqlite_engine, build_broker(make_settings())).dispatch_due(utcnow())
    version = version_of(sqlite_engine, first)

    def count() -> float:
        return gauge("herald_targets_published_total", platform="sandbox") or 0.0

    before = count()
    lateness_before = gauge("herald_publish_lateness_seconds_count", platform="sandbox") or 0.0

    # When the transaction that records the outcome rolls back, nothing is counted
    with pytest.raises(RuntimeError):
        publisher.publish(first, version)
    assert count() == before
    assert version_of(sqlite_engine, first) == version + 1  # claimed, not recorded

    # When an outcome commits, it is counted once, with its lateness
    failing.broken = False
    with session_scope(sqlite_engine) as session:
        target = session.get_one(Target, first)
        target.status, target.version = TargetStatus.QUEUED, version + 2
    assert publisher.publish(first, version + 2) is Result.PUBLISHED
    assert count() == before + 1
    assert gauge("herald_publish_lateness_seconds_count", platform="sandbox") == (
        lateness_before + 1
    )


def version_of(engine, target_id: str) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.get_one(Target, target_id).version


class FailingBookkeeping(SandboxPlatform):
    """The sandbox, whose delivery row fails to be written while `broken`."""

    broken = True

    def publish(self, request: PublishRequest) -> PublishResult:
        result = super().publish(request)
        if not self.broken:
            return result

        def fail(db, attempt_id):  # type: ignore[no-untyped-def]
            raise RuntimeError("the commit never happens")

        return replace(result, with_outcome=fail)
