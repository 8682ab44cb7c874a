"""The scheduler's approvals sweep: lost requests sent again, reminders once, overdue flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.broker import build_broker, redis_client
from herald_common.db import session_scope
from herald_common.models import (
    Approval,
    ApprovalNotice,
    Post,
    PostStatus,
    Target,
    TargetStatus,
)
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_embedded.stack import free_port
from herald_scheduler import approvals
from herald_scheduler.dispatching import Dispatcher
from tests.conftest import add_account, add_tenant, make_settings

NOW = datetime(2031, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    return make_settings(approval_reminder_before_seconds=3600.0, job_requeue_after_seconds=300.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each test on SQLite and on PostgreSQL (the scheduler's production database)."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("pg_engine")
    return request.getfixturevalue("sqlite_engine")


@pytest.fixture
def broker(settings: Settings) -> StubBroker:
    broker = build_broker(settings)
    assert isinstance(broker, StubBroker)
    return broker


def waiting(
    engine: Engine,
    *,
    due_at: datetime,
    requested_at: datetime = NOW - timedelta(hours=5),
    updated_at: datetime | None = None,
    reminded_at: datetime | None = None,
    told: bool = True,
) -> tuple[str, str]:
    """A post waiting for approval with its request: (post id, approval id). `told`: its request
    notice was sent."""
    tenant_id = add_tenant(engine)
    account_id = add_account(engine, tenant_id)
    with session_scope(engine) as session:
        post = Post(tenant_id=tenant_id, content="Spring sale", status=PostStatus.PENDING_APPROVAL)
        session.add(post)
        session.flush()
        session.add(
            Target(
                tenant_id=tenant_id,
                post_id=post.id,
                account_id=account_id,
                platform="sandbox",
                status=TargetStatus.DRAFT,
            )
        )
        approval = Approval(
            tenant_id=tenant_id,
            post_id=post.id,
            approvers=[{"name": "Jane", "email": "jane@example.com"}],
            notification_type="email",
            due_at=due_at,
            requested_at=requested_at,
            updated_at=updated_at or requested_at,
            reminded_at=reminded_at,
        )
        session.add(approval)
        session.flush()
        if told:
            session.add(
                ApprovalNotice(
                    tenant_id=tenant_id,
                    approval_id=approval.id,
                    kind="request",
                    channel="email",
                    recipient="jane@example.com",
                    status="sent",
                    sent_at=requested_at,
                )
            )
    return post.id, approval.id


def sent(broker: StubBroker) -> list[dict[str, Any]]:
    queue = broker.queues["approval"].queue  # type: ignore[attr-defined]
    return [dramatiq.Message.decode(raw).kwargs for raw in queue]


def approval(engine: Engine, approval_id: str) -> Approval:
    with session_scope(engine) as session:
        return session.get_one(Approval, approval_id)


def test_a_reminder_goes_once_before_the_due_time(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    # Given a request due in 50 minutes (inside the hour's reminder window), one due in two
    # hours, and one already reminded
    post_id, soon = waiting(engine, due_at=NOW + timedelta(minutes=50))
    _, later = waiting(engine, due_at=NOW + timedelta(hours=2))
    _, reminded = waiting(
        engine, due_at=NOW + timedelta(minutes=30), reminded_at=NOW - timedelta(hours=1)
    )

    # When the sweep runs twice
    first = approvals.sweep(engine, broker, settings, NOW)
    second = approvals.sweep(engine, broker, settings, NOW + timedelta(seconds=5))

    # I expect one reminder, for the request due soon, stamped once
    assert (first, second) == (1, 0)
    [message] = sent(broker)
    assert message["approval_id"] == soon
    assert message["post_id"] == post_id
    assert message["reminder"] is True
    assert approval(engine, soon).reminded_at == NOW
    assert approval(engine, later).reminded_at is None
    assert approval(engine, reminded).reminded_at == NOW - timedelta(hours=1)


def test_an_overdue_request_is_flagged_and_its_post_never_published(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    # Given a request whose due time has passed without a decision
    post_id, overdue = waiting(
        engine, due_at=NOW - timedelta(minutes=1), reminded_at=NOW - timedelta(hours=1)
    )
    platforms = PlatformRegistry(engine, settings)
    dispatcher = Dispatcher(
        engine=engine,
        broker=broker,
        platforms=platforms,
        settings=settings,
        clock=lambda: NOW,
    )

    # When the scheduler ticks (its sweeps included) and the sweep runs again later
    dispatcher.tick()
    again = approvals.sweep(engine, broker, settings, NOW + timedelta(minutes=5))

    # I expect the request flagged once, the post still waiting, and nothing sent to publish
    assert approval(engine, overdue).overdue_at == NOW
    assert again == 0
    with session_scope(engine) as session:
        post = session.get_one(Post, post_id)
        targets = session.exec(select(Target.status).where(Target.post_id == post_id)).all()
    assert post.status == PostStatus.PENDING_APPROVAL
    assert targets == [TargetStatus.DRAFT]
    assert broker.queues["publish"].qsize() == 0  # type: ignore[attr-defined]
    assert sent(broker) == []
    platforms.close()


def test_a_request_nobody_was_told_of_is_sent_again_once(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    # Given a request the API could not send (marked never sent), one sent a moment ago whose
    # message may still be on its way, and one whose approvers were told
    lost_at = datetime(1970, 1, 1, tzinfo=UTC)
    _, lost = waiting(engine, due_at=NOW + timedelta(days=2), updated_at=lost_at, told=False)
    _, fresh = waiting(
        engine,
        due_at=NOW + timedelta(days=2),
        requested_at=NOW - timedelta(seconds=30),
        told=False,
    )
    waiting(engine, due_at=NOW + timedelta(days=2), told=True)

    # When the sweep runs twice
    first = approvals.sweep(engine, broker, settings, NOW)
    second = approvals.sweep(engine, broker, settings, NOW + timedelta(seconds=5))

    # I expect one message, for the lost request, and its marker moved on
    assert (first, second) == (1, 0)
    [message] = sent(broker)
    assert (message["approval_id"], message["reminder"]) == (lost, False)
    assert approval(engine, lost).updated_at == NOW
    assert approval(engine, fresh).updated_at == NOW - timedelta(seconds=30)


def test_with_the_broker_away_a_reminder_waits_for_the_next_pass(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    # Given a request due soon, and a broker that does not answer
    _, soon = waiting(engine, due_at=NOW + timedelta(minutes=10))
    away = RedisBroker(client=redis_client(f"redis://127.0.0.1:{free_port()}/0"))
    away.declare_queue("approval")

    # When the sweep runs with it, then with a broker that works
    during = approvals.sweep(engine, away, settings, NOW)
    stamp = approval(engine, soon).reminded_at
    after = approvals.sweep(engine, broker, settings, NOW + timedelta(seconds=5))

    # I expect no reminder counted and the stamp taken back, then the reminder sent
    assert (during, stamp) == (0, None)
    assert after == 1
    assert [m["approval_id"] for m in sent(broker)] == [soon]
    away.close()


def test_the_sweep_runs_in_the_schedulers_tick(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    # Given a request due soon
    waiting(engine, due_at=utcnow() + timedelta(minutes=10))
    platforms = PlatformRegistry(engine, settings)
    dispatcher = Dispatcher(engine=engine, broker=broker, platforms=platforms, settings=settings)

    # When the scheduler ticks
    report = dispatcher.tick()

    # I expect the approvals sweep to have reminded it
    assert report.sweeps.get("approvals") == 1
    platforms.close()


def test_a_notice_left_unfinished_is_sent_again_once(
    engine: Engine, broker: StubBroker, settings: Settings
) -> None:
    # Given two waiting requests (due in three days: no reminder yet) whose notices never
    # finished: one left `sending` by a worker that stopped on the message's last try, one
    # left `retrying` by a retry message that was lost; and a third whose notice is only
    # just being sent
    due = NOW + timedelta(days=3)
    _, stopped = waiting(engine, due_at=due, told=False)
    _, lost = waiting(engine, due_at=due, told=False)
    _, busy = waiting(engine, due_at=due, told=False)
    with session_scope(engine) as session:
        for approval_id, status, began in (
            (stopped, "sending", NOW - approvals.SENDING_STALE - timedelta(seconds=1)),
            (lost, "retrying", NOW - approvals.RETRYING_STALE - timedelta(seconds=1)),
            (busy, "sending", NOW - timedelta(seconds=10)),
        ):
            row = session.get_one(Approval, approval_id)
            session.add(
                ApprovalNotice(
                    tenant_id=row.tenant_id,
                    approval_id=approval_id,
                    kind="request",
                    channel="email",
                    recipient="jane@example.com",
                    status=status,
                    created_at=began,
                )
            )

    # When the sweep runs twice
    first = approvals.resume_unfinished(engine, broker, NOW)
    second = approvals.resume_unfinished(engine, broker, NOW + timedelta(seconds=5))

    # I expect one message for each of the two left unfinished, and nothing for the busy one
    assert (first, second) == (2, 0)
    assert sorted(m["approval_id"] for m in sent(broker)) == sorted([stopped, lost])
    assert all(m["reminder"] is False for m in sent(broker))
    with session_scope(engine) as session:
        statuses = {n.approval_id: n.status for n in session.exec(select(ApprovalNotice)).all()}
    assert statuses == {stopped: "retrying", lost: "retrying", busy: "sending"}
