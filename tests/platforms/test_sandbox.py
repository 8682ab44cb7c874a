"""The sandbox platform: its delivery is written with the outcome it answers (both or neither),
it answers after latency_ms ± latency_jitter_ms, and with hold_after_accept_ms it keeps what
it accepted on its own, as a real platform does."""

from __future__ import annotations

import random

from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.db import session_scope
from herald_common.models import SandboxDelivery
from herald_common.platforms import AccountRef, PublishRequest
from herald_common.platforms.sandbox import SandboxPlatform, SandboxSettings, _latency_seconds
from tests.conftest import add_account, add_tenant, stored


def request(engine: Engine, **settings: object) -> PublishRequest:
    tenant = add_tenant(engine)
    account_id = add_account(engine, tenant, settings=dict(settings))
    account = AccountRef(
        id=account_id, tenant_id=tenant, platform="sandbox", handle="demo", settings=settings
    )
    return PublishRequest(account=account, idempotency_key="t-1", text="Hello")


def deliveries(engine: Engine) -> list[SandboxDelivery]:
    with session_scope(engine) as session:
        return list(session.exec(select(SandboxDelivery)).all())


def test_an_answer_whose_outcome_is_never_recorded_leaves_no_delivery(sqlite_engine):
    # When the sandbox answers but the outcome's transaction never writes its bookkeeping
    result = SandboxPlatform(sqlite_engine).publish(request(sqlite_engine))

    # I expect no delivery: as far as anyone can tell, it never went out
    assert result.with_outcome is not None
    assert deliveries(sqlite_engine) == []
    assert SandboxPlatform(sqlite_engine).lookup(request(sqlite_engine)) is None


def test_the_delivery_is_written_with_the_outcome_and_a_repeated_key_finds_the_first(
    sqlite_engine,
):
    platform = SandboxPlatform(sqlite_engine)
    asked = request(sqlite_engine)
    first = stored(sqlite_engine, platform.publish(asked))
    again = stored(sqlite_engine, platform.publish(asked))
    [delivery] = deliveries(sqlite_engine)
    assert first.platform_post_id == again.platform_post_id == delivery.id
    assert platform.lookup(asked) == first


def test_with_a_hold_after_accepting_the_delivery_is_kept_before_the_answer(sqlite_engine):
    # Given an account that holds 1 ms after accepting (the crash tests' window)
    platform = SandboxPlatform(sqlite_engine)
    asked = request(sqlite_engine, hold_after_accept_ms=1)

    # When it publishes, I expect the delivery kept by the platform itself
    result = platform.publish(asked)
    assert result.with_outcome is None
    [delivery] = deliveries(sqlite_engine)
    assert result.platform_post_id == delivery.id


def test_latency_is_spread_around_its_middle_and_never_negative():
    random.seed(7)
    options = SandboxSettings(latency_ms=200, latency_jitter_ms=50)
    waits = [_latency_seconds(options) for _ in range(2000)]
    assert 0.150 <= min(waits) < 0.160 and 0.240 < max(waits) <= 0.250
    assert 0.195 < sum(waits) / len(waits) < 0.205
    assert _latency_seconds(SandboxSettings(latency_ms=10, latency_jitter_ms=50)) >= 0
    assert _latency_seconds(SandboxSettings()) == 0
