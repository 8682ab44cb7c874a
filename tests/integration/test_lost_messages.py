"""What counts as a lost publish message, on real Redis and PostgreSQL: one the broker no
longer holds, never one that waits behind a long queue."""

from __future__ import annotations

from datetime import timedelta

import redis
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlalchemy.engine import Engine

from herald_common.broker import build_broker
from herald_common.contracts import PUBLISH
from herald_common.db import session_scope
from herald_common.models import Target, TargetStatus
from herald_common.platforms import PlatformRegistry
from herald_common.timeutil import utcnow
from herald_scheduler.dispatching import Dispatcher
from tests.conftest import add_account, add_post, add_tenant, make_settings


def scheduler(engine: Engine, redis_url: str, namespace: str) -> Dispatcher:
    """A fresh dispatcher (its look for lost messages is not throttled yet)."""
    settings = make_settings(
        redis_url=redis_url, HERALD_BROKER_NAMESPACE=namespace, requeue_after_seconds=60
    )
    broker = build_broker(settings)
    assert isinstance(broker, RedisBroker)
    return Dispatcher(
        engine=engine, broker=broker, platforms=PlatformRegistry(engine), settings=settings
    )


def queue_many(engine: Engine, redis_url: str, namespace: str, count: int) -> Dispatcher:
    """`count` targets due now, dispatched (messages on the queue, nobody consuming), then
    made to look queued ten minutes ago: long past REQUEUE_AFTER_SECONDS."""
    tenant = add_tenant(engine)
    accounts = [add_account(engine, tenant, handle=f"a{n}") for n in range(5)]
    for _ in range(count // 5):
        add_post(engine, tenant, accounts)
    dispatcher = scheduler(engine, redis_url, namespace)
    while dispatcher.dispatch_due(utcnow())[0]:
        pass
    age(engine)
    return dispatcher


def age(engine: Engine) -> None:
    """Make every queued target look queued ten minutes ago and due since (its message, if the
    broker holds one, keeps the time it was sent with)."""
    with session_scope(engine) as session:
        session.execute(
            update(Target)
            .where(Target.status == TargetStatus.QUEUED)
            .values(
                queued_at=utcnow() - timedelta(minutes=10),
                due_at=utcnow() - timedelta(minutes=9),
            )
        )


def resent_counter() -> float:
    return REGISTRY.get_sample_value("herald_publish_messages_resent_total") or 0.0


def test_a_long_queue_is_never_sent_again(pg_engine, redis_server_url, redis_namespace):
    # Given 300 targets queued ten minutes ago whose messages all wait in Redis
    queue_many(pg_engine, redis_server_url, redis_namespace, 300)
    before = resent_counter()

    # When the scheduler looks for lost messages
    resent, failed = scheduler(pg_engine, redis_server_url, redis_namespace).resend_lost(utcnow())

    # I expect none sent again: the queue is long, not lost
    assert (resent, failed) == (0, 0)
    assert resent_counter() == before
    client = redis.Redis.from_url(redis_server_url)
    assert client.hlen(f"{redis_namespace}:{PUBLISH.queue}.msgs") == 300


def test_messages_wiped_with_redis_are_sent_again_once(
    pg_engine, redis_server_url, redis_namespace
):
    # Given 300 queued targets whose messages Redis lost (restarted empty)
    queue_many(pg_engine, redis_server_url, redis_namespace, 300)
    client = redis.Redis.from_url(redis_server_url)
    client.delete(*client.scan_iter(f"{redis_namespace}:*"))
    before = resent_counter()

    # When the scheduler looks for lost messages
    resent, failed = scheduler(pg_engine, redis_server_url, redis_namespace).resend_lost(utcnow())

    # I expect every one sent again, once, and counted
    assert (resent, failed) == (300, 0)
    assert resent_counter() == before + 300
    assert client.hlen(f"{redis_namespace}:{PUBLISH.queue}.msgs") == 300

    # and a later look finds them held again: nothing more is sent
    age(pg_engine)
    assert scheduler(pg_engine, redis_server_url, redis_namespace).resend_lost(utcnow()) == (0, 0)
    assert client.hlen(f"{redis_namespace}:{PUBLISH.queue}.msgs") == 300


def test_a_dead_lettered_message_is_sent_again_and_the_others_are_not(
    pg_engine, redis_server_url, redis_namespace
):
    # Given 10 queued targets, one of whose messages was dead-lettered
    queue_many(pg_engine, redis_server_url, redis_namespace, 10)
    client = redis.Redis.from_url(redis_server_url)
    msgs = f"{redis_namespace}:{PUBLISH.queue}.msgs"
    redis_id, data = next(iter(client.hgetall(msgs).items()))
    pipe = client.pipeline()
    pipe.hdel(msgs, redis_id)
    pipe.lrem(f"{redis_namespace}:{PUBLISH.queue}", 0, redis_id)
    pipe.zadd(f"{redis_namespace}:{PUBLISH.queue}.XQ", {redis_id: 1})
    pipe.hset(f"{redis_namespace}:{PUBLISH.queue}.XQ.msgs", redis_id, data)
    pipe.execute()

    # When the scheduler looks for lost messages
    resent, _ = scheduler(pg_engine, redis_server_url, redis_namespace).resend_lost(utcnow())

    # I expect that one sent again
    assert resent == 1
    assert client.hlen(msgs) == 10


def test_delayed_and_taken_messages_are_held(pg_engine, redis_server_url, redis_namespace):
    # Given 20 queued targets: 10 of whose messages a worker has taken and not acknowledged,
    # and 10 more sent delayed to a later second
    dispatcher = queue_many(pg_engine, redis_server_url, redis_namespace, 10)
    broker = dispatcher.broker
    consumer = broker.consume(PUBLISH.queue, prefetch=10, timeout=1000)
    taken = [next(consumer) for _ in range(10)]
    assert all(m is not None for m in taken)
    tenant = add_tenant(pg_engine)
    accounts = [add_account(pg_engine, tenant, handle=f"d{n}") for n in range(10)]
    add_post(pg_engine, tenant, accounts, due_at=utcnow() + timedelta(seconds=0.5))
    assert dispatcher.dispatch_due(utcnow()) == (10, 0)  # not started: sent delayed
    age(pg_engine)

    # When the scheduler looks for lost messages
    resent, _ = scheduler(pg_engine, redis_server_url, redis_namespace).resend_lost(utcnow())

    # I expect nothing sent again
    assert resent == 0
    consumer.close()
