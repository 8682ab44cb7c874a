"""The scheduler's dispatch, resend and reconcile passes, on SQLite and the stub broker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update
from sqlalchemy.engine import Engine

from herald_common.broker import build_broker
from herald_common.contracts import PUBLISH
from herald_common.db import session_scope
from herald_common.models import Attempt, Post, SandboxDelivery, Target, TargetStatus
from herald_common.platforms import LookupUnsupported, PlatformRegistry
from herald_common.timeutil import utcnow
from herald_scheduler.dispatching import NEVER_SENT, Dispatcher
from tests.conftest import add_account, add_post, add_tenant, make_settings


def messages(broker: StubBroker) -> list[dict]:
    """Payloads waiting on the publish queue, delayed or not."""
    found = []
    for name in (PUBLISH.queue, f"{PUBLISH.queue}.DQ"):
        queue = broker.queues[name]
        found += list(queue.queue)
    return [Message.decode(m).kwargs for m in found]


def load(engine: Engine, model, id_):  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.get(model, id_)


@pytest.fixture
def broker() -> StubBroker:
    broker = build_broker(make_settings())
    assert isinstance(broker, StubBroker)
    return broker


def dispatcher(engine: Engine, broker, **settings) -> Dispatcher:  # type: ignore[no-untyped-def]
    return Dispatcher(
        engine=engine,
        broker=broker,
        platforms=PlatformRegistry(engine),
        settings=make_settings(**settings),
    )


def test_due_targets_are_queued_with_a_new_version_and_one_message_each(sqlite_engine, broker):
    # Given a post due now for two accounts, and one due next week
    tenant = add_tenant(sqlite_engine)
    a, b = (
        add_account(sqlite_engine, tenant, handle="a"),
        add_account(sqlite_engine, tenant, handle="b"),
    )
    _, due = add_post(sqlite_engine, tenant, [a, b])
    _, [later] = add_post(sqlite_engine, tenant, [a], due_at=utcnow() + timedelta(days=7))

    # When the scheduler ticks
    report = dispatcher(sqlite_engine, broker).tick()

    # I expect the due targets queued at version 2, one message each, the future one untouched
    assert report.dispatched == 2
    for target_id in due:
        target = load(sqlite_engine, Target, target_id)
        assert (target.status, target.version) == (TargetStatus.QUEUED, 2)
    assert sorted(m["target_id"] for m in messages(broker)) == sorted(due)
    assert {m["version"] for m in messages(broker)} == {2}
    assert load(sqlite_engine, Target, later).status == TargetStatus.SCHEDULED


def test_a_target_due_within_the_lookahead_is_sent_delayed_to_its_second(sqlite_engine, broker):
    # Given a target due in 800 ms and a 1 s lookahead
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    due_at = utcnow() + timedelta(milliseconds=800)
    add_post(sqlite_engine, tenant, [account], due_at=due_at)

    # When the scheduler ticks
    dispatcher(sqlite_engine, broker, scheduler_lookahead_seconds=1.0).tick()

    # I expect the message on the delay queue, with an eta at its due time
    delayed = list(broker.queues[f"{PUBLISH.queue}.DQ"].queue)
    assert len(delayed) == 1
    eta_ms = Message.decode(delayed[0]).options["eta"]
    assert abs(eta_ms - due_at.timestamp() * 1000) < 100


def test_a_second_tick_sends_nothing_more(sqlite_engine, broker):
    # Given a due target already dispatched
    tenant = add_tenant(sqlite_engine)
    add_post(sqlite_engine, tenant, [add_account(sqlite_engine, tenant)])
    scheduler = dispatcher(sqlite_engine, broker)
    scheduler.tick()

    # When the scheduler ticks again
    report = scheduler.tick()

    # I expect no new message
    assert report.dispatched == 0 and report.resent == 0
    assert len(messages(broker)) == 1


def test_a_queued_target_that_never_started_is_sent_again_at_the_same_version(
    sqlite_engine, broker
):
    # Given a target queued 10 minutes ago whose message was lost
    tenant = add_tenant(sqlite_engine)
    _, [target_id] = add_post(sqlite_engine, tenant, [add_account(sqlite_engine, tenant)])
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(Target)
            .where(Target.id == target_id)
            .values(
                status=TargetStatus.QUEUED, version=5, queued_at=utcnow() - timedelta(minutes=10)
            )
        )

    # When the scheduler ticks
    report = dispatcher(sqlite_engine, broker, requeue_after_seconds=120).tick()

    # I expect it sent again, at the version it has
    assert report.resent == 1
    assert messages(broker) == [{"target_id": target_id, "version": 5}]
    assert load(sqlite_engine, Target, target_id).queued_at > utcnow() - timedelta(minutes=1)


class DownBroker(StubBroker):
    """A broker that cannot be reached, as Redis when it is stopped."""

    def enqueue(self, message, *, delay=None):  # type: ignore[no-untyped-def]
        raise ConnectionError("Redis is down")


def test_with_the_broker_down_targets_wait_in_the_database_and_go_when_it_is_back(
    sqlite_engine, broker
):
    # Given two due targets and a broker that is down
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, targets = add_post(
        sqlite_engine, tenant, [account, add_account(sqlite_engine, tenant, handle="b")]
    )
    down = DownBroker()
    down.declare_queue(PUBLISH.queue)

    # When a tick cannot send
    report = dispatcher(sqlite_engine, down).tick()

    # I expect both kept, marked as never sent
    assert report.send_failed == 2
    for target_id in targets:
        assert load(sqlite_engine, Target, target_id).queued_at == NEVER_SENT

    # And when the broker is back, the next tick sends them
    report = dispatcher(sqlite_engine, broker).tick()
    assert report.resent == 2
    assert sorted(m["target_id"] for m in messages(broker)) == sorted(targets)


def stuck(engine: Engine, target_id: str) -> None:
    """Leave a target as a worker that died mid-publish an hour ago would."""
    tenant_id = load(engine, Target, target_id).tenant_id
    with session_scope(engine) as session:
        session.execute(
            update(Target)
            .where(Target.id == target_id)
            .values(
                status=TargetStatus.PUBLISHING, version=3, started_at=utcnow() - timedelta(hours=1)
            )
        )
        session.add(Attempt(tenant_id=tenant_id, target_id=target_id, number=1))


def test_a_stuck_target_the_platform_has_is_reconciled_to_published(sqlite_engine, broker):
    # Given a target whose worker died after the platform accepted the post
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    post_id, [target_id] = add_post(sqlite_engine, tenant, [account])
    with session_scope(sqlite_engine) as session:
        session.add(
            SandboxDelivery(
                tenant_id=tenant,
                account_id=account,
                idempotency_key=target_id,
                accepted_key=target_id,
                outcome="accepted",
                content="Hello",
            )
        )
    stuck(sqlite_engine, target_id)

    # When the scheduler ticks
    report = dispatcher(sqlite_engine, broker).tick()

    # I expect it published with the platform's id, not sent again
    assert report.reconciled == 1
    target = load(sqlite_engine, Target, target_id)
    assert target.status == TargetStatus.PUBLISHED and target.platform_post_id
    assert messages(broker) == []
    assert load(sqlite_engine, Post, post_id).status == "published"


def test_a_stuck_target_the_platform_never_got_is_retried_with_backoff(sqlite_engine, broker):
    # Given a target whose worker died before the platform got anything
    tenant = add_tenant(sqlite_engine)
    _, [target_id] = add_post(sqlite_engine, tenant, [add_account(sqlite_engine, tenant)])
    stuck(sqlite_engine, target_id)

    # When the scheduler ticks twice
    scheduler = dispatcher(sqlite_engine, broker)
    before = utcnow()
    scheduler.tick()
    scheduler.tick()

    # I expect it to wait for a retry after the backoff (2 s), with no message sent yet
    target = load(sqlite_engine, Target, target_id)
    assert target.status == TargetStatus.RETRYING and target.version > 4
    assert target.due_at >= before + timedelta(seconds=2)
    assert "no such post" in target.error
    assert messages(broker) == []


class NoLookup(PlatformRegistry):
    def get(self, platform):  # type: ignore[no-untyped-def]
        adapter = super().get(platform)

        class Blind:
            def lookup(self, request):  # type: ignore[no-untyped-def]
                raise LookupUnsupported(adapter.name)

        return Blind()


def test_a_stuck_target_that_cannot_be_looked_up_becomes_unknown_never_resent(
    sqlite_engine, broker
):
    # Given a stuck target on a platform that cannot be asked
    tenant = add_tenant(sqlite_engine)
    post_id, [target_id] = add_post(sqlite_engine, tenant, [add_account(sqlite_engine, tenant)])
    stuck(sqlite_engine, target_id)
    scheduler = Dispatcher(
        engine=sqlite_engine,
        broker=broker,
        platforms=NoLookup(sqlite_engine),
        settings=make_settings(),
    )

    # When the scheduler ticks twice
    scheduler.tick()
    scheduler.tick()

    # I expect `unknown` with a reason a person can act on, and no message
    target = load(sqlite_engine, Target, target_id)
    assert target.status == TargetStatus.UNKNOWN
    assert "gives no way to ask" in target.error and "/resolve" in target.error
    assert messages(broker) == []
    assert load(sqlite_engine, Post, post_id).status == "failed"
