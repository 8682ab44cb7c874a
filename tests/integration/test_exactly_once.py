"""The exactly-once protocol under real concurrency: PostgreSQL, Redis, threads, a real worker."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.broker import build_broker
from herald_common.contracts import PUBLISH, PublishTargetPayload, send
from herald_common.db import session_scope
from herald_common.models import Post, SandboxDelivery, Target, TargetStatus
from herald_common.platforms import PlatformRegistry
from herald_common.timeutil import utcnow
from herald_publisher.actors import declare_actors
from herald_publisher.publishing import Publisher, Result
from herald_scheduler.dispatching import Dispatcher
from tests.conftest import add_account, add_post, add_tenant, make_settings


def count(engine: Engine, model, *where) -> int:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model).where(*where)).one()


def redis_broker(redis_url: str, namespace: str) -> RedisBroker:
    broker = build_broker(make_settings(redis_url=redis_url, HERALD_BROKER_NAMESPACE=namespace))
    assert isinstance(broker, RedisBroker)
    return broker


def test_two_schedulers_at_once_send_each_due_target_once(
    pg_engine, redis_server_url, redis_namespace
):
    # Given 300 targets due now on PostgreSQL, and two schedulers on one Redis
    tenant = add_tenant(pg_engine)
    accounts = [add_account(pg_engine, tenant, handle=f"a{i}") for i in range(3)]
    for _ in range(100):
        add_post(pg_engine, tenant, accounts)
    settings = make_settings(scheduler_batch_size=40)
    schedulers = [
        Dispatcher(
            engine=pg_engine,
            broker=redis_broker(redis_server_url, redis_namespace),
            platforms=PlatformRegistry(pg_engine),
            settings=settings,
        )
        for _ in range(2)
    ]

    # When both tick side by side until nothing is due
    def drain(scheduler: Dispatcher) -> int:
        sent = 0
        while (report := scheduler.tick()).dispatched:
            sent += report.dispatched
        return sent

    with ThreadPoolExecutor(2) as pool:
        sent = list(pool.map(drain, schedulers))

    # I expect 300 messages in Redis, one per target, split between the two schedulers
    client = redis.Redis.from_url(redis_server_url)
    assert sum(sent) == 300
    assert all(n > 0 for n in sent), sent
    assert client.hlen(f"{redis_namespace}:{PUBLISH.queue}.msgs") == 300
    assert count(pg_engine, Target, Target.status == TargetStatus.QUEUED) == 300


def test_one_message_handled_by_many_threads_at_once_publishes_once(pg_engine):
    # Given one queued target on PostgreSQL
    tenant = add_tenant(pg_engine)
    account = add_account(pg_engine, tenant)
    _, [target_id] = add_post(pg_engine, tenant, [account])
    with session_scope(pg_engine) as session:
        session.execute(
            update(Target)
            .where(Target.id == target_id)
            .values(status=TargetStatus.QUEUED, version=2, queued_at=utcnow())
        )
    publisher = Publisher(
        engine=pg_engine, platforms=PlatformRegistry(pg_engine), settings=make_settings()
    )

    # When eight threads handle the same message at the same moment
    barrier = threading.Barrier(8)

    def handle(_: int) -> Result:
        barrier.wait()
        return publisher.publish(target_id, 2)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(handle, range(8)))

    # I expect exactly one publish and seven stale acknowledgements
    assert results.count(Result.PUBLISHED) == 1
    assert results.count(Result.STALE) == 7
    assert count(pg_engine, SandboxDelivery) == 1


def test_a_post_with_many_targets_finishing_together_ends_published(pg_engine):
    # Given a post with 12 queued targets
    tenant = add_tenant(pg_engine)
    accounts = [add_account(pg_engine, tenant, handle=f"h{i}") for i in range(12)]
    post_id, targets = add_post(pg_engine, tenant, accounts)
    with session_scope(pg_engine) as session:
        session.execute(
            update(Target).values(status=TargetStatus.QUEUED, version=2, queued_at=utcnow())
        )
    publisher = Publisher(
        engine=pg_engine, platforms=PlatformRegistry(pg_engine), settings=make_settings()
    )

    # When all are published at once by six threads
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda t: publisher.publish(t, 2), targets))

    # I expect the post's derived status to see every target (no lost update)
    assert set(results) == {Result.PUBLISHED}
    with session_scope(pg_engine) as session:
        assert session.get(Post, post_id).status == "published"


def test_a_worker_on_redis_publishes_due_posts_and_ignores_a_duplicate(
    pg_engine, redis_server_url, redis_namespace
):
    # Given a scheduler and a publish worker on Redis and PostgreSQL, and a post due in 1 s
    settings = make_settings(redis_url=redis_server_url, HERALD_BROKER_NAMESPACE=redis_namespace)
    broker = redis_broker(redis_server_url, redis_namespace)
    platforms = PlatformRegistry(pg_engine)
    publisher = Publisher(engine=pg_engine, platforms=platforms, settings=settings)
    declare_actors(broker, lambda: publisher)
    worker = Worker(broker, queues={PUBLISH.queue}, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        tenant = add_tenant(pg_engine)
        account = add_account(pg_engine, tenant)
        due_at = utcnow() + timedelta(seconds=1)
        post_id, [target_id] = add_post(pg_engine, tenant, [account], due_at=due_at)
        scheduler = Dispatcher(
            engine=pg_engine, broker=broker, platforms=platforms, settings=settings
        )

        # When the scheduler ticks, and the same message is also sent a second time
        deadline = time.monotonic() + 10
        while scheduler.tick().dispatched == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        with session_scope(pg_engine) as session:
            version = session.get(Target, target_id).version
        send(broker, PUBLISH, PublishTargetPayload(target_id=target_id, version=version))
        while count(pg_engine, Target, Target.status == TargetStatus.PUBLISHED) == 0:
            assert time.monotonic() < deadline, "not published within 10 s"
            time.sleep(0.05)
        broker.join(PUBLISH.queue, timeout=10_000)
        worker.join()
    finally:
        worker.stop()

    # I expect one post on the platform, published on its second (not before it)
    assert count(pg_engine, SandboxDelivery) == 1
    with session_scope(pg_engine) as session:
        target = session.get(Target, target_id)
        assert session.get(Post, post_id).status == "published"
    lateness = (target.published_at - due_at).total_seconds()
    assert 0 <= lateness < 1.0, lateness


@pytest.mark.parametrize("states", [("scheduled", "retrying")])
def test_the_dispatch_query_reads_the_partial_index(pg_engine, states):
    # Given PostgreSQL with the migrated schema
    # When the planner is asked how it finds due targets (sequential scans disallowed)
    with pg_engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in connection.exec_driver_sql(
                "EXPLAIN SELECT id FROM targets WHERE status IN ('scheduled', 'retrying') "
                "AND due_at <= now() ORDER BY due_at LIMIT 500"
            )
        )
    # I expect the partial index, which holds only dispatchable rows
    assert "ix_targets_dispatchable" in plan, plan
