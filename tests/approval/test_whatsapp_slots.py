"""WhatsApp sends in flight are limited to WHATSAPP_CONCURRENCY: across processes with Redis
(Dramatiq's ConcurrentRateLimiter), within one with the in-process broker."""

from __future__ import annotations

from contextlib import ExitStack

import httpx
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from herald_common.broker import redis_client
from herald_common.errors import TransientError
from herald_common.notify import LocalSlots, RedisSlots, WhatsAppSender, whatsapp_slots
from tests.conftest import make_settings

from .conftest import GRAPH_VERSION, PHONE_NUMBER_ID, WHATSAPP_TOKEN, FakeCloudApi

pytestmark = pytest.mark.redis


def test_slots_live_in_redis_when_the_broker_does(
    redis_server_url: str, redis_namespace: str
) -> None:
    # Given two "processes", each with its own broker client, and a limit of 2
    settings = make_settings(broker_namespace=redis_namespace, whatsapp_concurrency=2)
    brokers = [
        RedisBroker(client=redis_client(redis_server_url), namespace=redis_namespace)
        for _ in range(2)
    ]
    first, second = (whatsapp_slots(b, settings) for b in brokers)

    # When the first holds two slots and the second asks for one
    with ExitStack() as held:
        taken = [held.enter_context(first.try_hold()) for _ in range(2)]
        with second.try_hold() as third:
            refused = not third

    # and asks again once the first let go
    with second.try_hold() as again:
        freed = again

    # I expect the slots shared: the third refused, then given
    assert isinstance(first, RedisSlots)
    assert taken == [True, True]
    assert refused
    assert freed
    for broker in brokers:
        broker.close()


def test_slots_are_local_with_the_in_process_broker() -> None:
    # Given the in-process broker and a limit of 1
    slots = whatsapp_slots(StubBroker(), make_settings(whatsapp_concurrency=1))

    # When one slot is held and another asked for
    with slots.try_hold() as one, slots.try_hold() as two:
        pass

    # I expect a semaphore of one
    assert isinstance(slots, LocalSlots)
    assert (one, two) == (True, False)


def test_a_send_waits_for_a_slot_then_gives_up_for_a_retry(
    redis_server_url: str, redis_namespace: str
) -> None:
    # Given every slot taken by another process
    client = redis.Redis.from_url(redis_server_url)
    key = f"{redis_namespace}:whatsapp:in-flight"
    other = RedisSlots(client, key, limit=1, ttl_ms=60_000)
    server = FakeCloudApi()
    server.start()
    settings = make_settings(
        whatsapp_api_url=server.url,
        graph_api_version=GRAPH_VERSION,
        whatsapp_phone_number_id=PHONE_NUMBER_ID,
        whatsapp_token=WHATSAPP_TOKEN,
    )
    with httpx.Client(timeout=5) as http:
        sender = WhatsAppSender(
            settings, http, RedisSlots(client, key, limit=1, ttl_ms=60_000), wait_seconds=0.3
        )

        # When a message is sent while it stays taken, and after it is freed
        with other.try_hold() as held:
            assert held
            with pytest.raises(TransientError) as busy:
                sender.send("+15551234567", "Approve?")
        wamid = sender.send("+15551234567", "Approve?")

    # I expect a transient error saying why (nothing reached the API), then the message sent
    assert "all 1 sends in flight (WHATSAPP_CONCURRENCY)" in busy.value.message
    assert wamid == "wamid.HBgL000001"
    assert len(server.requests) == 1
    server.stop()
    client.close()
