"""The broker: Redis in production, Dramatiq's in-process stub broker by default."""

from __future__ import annotations

import redis
from dramatiq.broker import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from herald_common.contracts import CONTRACTS
from herald_common.settings import Settings


def redis_client(url: str) -> redis.Redis:
    """A Redis client that fails fast instead of hanging when Redis is away."""
    pool = redis.ConnectionPool.from_url(
        url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
    )
    return redis.Redis(connection_pool=pool)


def build_broker(settings: Settings) -> Broker:
    """The broker these settings ask for, with every contract's queue declared on it."""
    url = settings.broker_url
    broker: Broker
    if url:
        broker = RedisBroker(client=redis_client(url), namespace=settings.broker_namespace)
    else:
        broker = StubBroker()
    for contract in CONTRACTS:
        broker.declare_queue(contract.queue)
    return broker


def broker_reachable(broker: Broker) -> bool:
    """Whether the broker answers (always true for the in-process broker)."""
    if isinstance(broker, RedisBroker):
        try:
            return bool(broker.client.ping())
        except redis.RedisError:
            return False
    return True
