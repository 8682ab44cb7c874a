"""The scheduler's analytics sweep: which published targets it sends to the analytics queue and
when, with a fixed clock, on SQLite (and PostgreSQL where rows are locked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from herald_common.analytics import METRICS, first_pull_at, next_pull_at, pull_ages
from herald_common.broker import build_broker
from herald_common.contracts import PULL_ANALYTICS
from herald_common.db import session_scope
from herald_common.models import Target, TargetStatus
from herald_common.platforms import PlatformRegistry
from herald_common.settings import get_settings
from herald_common.timeutil import utcnow
from herald_publisher.publishing import Publisher, Result
from herald_scheduler.analytics import CHUNK, sweep
from tests.conftest import add_account, add_post, add_tenant, make_settings

PUBLISHED = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
HOUR, DAY = 3600, 86400


@pytest.fixture
def broker() -> StubBroker:
    broker = build_broker(make_settings())
    assert isinstance(broker, StubBroker)
    return broker


def pulls(broker: StubBroker) -> list[dict]:
    """The payloads waiting on the analytics queue."""
    return [Message.decode(m).kwargs for m in broker.queues[PULL_ANALYTICS.queue].queue]


def published(
    engine: Engine,
    tenant: str,
    count: int = 1,
    *,
    at: datetime = PUBLISHED,
    due: datetime | None = None,
    status: TargetStatus = TargetStatus.PUBLISHED,
) -> list[str]:
    """Targets published at `at` whose metrics are due at `due` (their first slot by default)."""
    account = add_account(engine, tenant)
    ids = []
    for _ in range(count):
        _, [target_id] = add_post(engine, tenant, [account], due_at=at)
        ids.append(target_id)
    with session_scope(engine) as session:
        session.execute(
            update(Target)
            .where(col(Target.id).in_(ids))
            .values(
                status=status,
                published_at=at,
                metrics_due_at=due or at + timedelta(seconds=900),
            )
        )
    return ids


def load(engine: Engine, target_id: str) -> Target:
    with session_scope(engine) as session:
        return session.get_one(Target, target_id)


def test_slots_are_often_in_the_first_day_then_daily_and_stop_after_the_max_age():
    # Given the default ages (15 min, 1 h, 3 h, 6 h, 12 h, 1 day), daily after, 30 days at most
    settings = make_settings()

    # When each slot is followed by the next, from publishing on
    ages = []
    due = first_pull_at(PUBLISHED, settings)
    while due is not None:
        ages.append((due - PUBLISHED).total_seconds())
        due = next_pull_at(PUBLISHED, due, settings)

    # Then the first day is pulled six times, then once a day through day 30, then never
    assert ages[:6] == [900, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY]
    assert ages[6:] == [n * DAY for n in range(2, 31)]
    # And a slot missed (the scheduler was down) is followed by the next one after now
    late = PUBLISHED + timedelta(seconds=5000)
    assert next_pull_at(PUBLISHED, late, settings) == PUBLISHED + timedelta(hours=3)
    assert next_pull_at(PUBLISHED, PUBLISHED + timedelta(days=3, hours=5), settings) == (
        PUBLISHED + timedelta(days=4)
    )


def test_the_schedule_follows_the_settings():
    settings = make_settings(
        analytics_pull_ages="60, 10, x, -5",
        analytics_pull_every_seconds=3600,
        analytics_pull_max_age_days=0.125,  # 3 hours
    )

    assert pull_ages(settings) == (10.0, 60.0)  # sorted; what is not a positive number is left
    due = first_pull_at(PUBLISHED, settings)
    seen = []
    while due is not None:
        seen.append((due - PUBLISHED).total_seconds())
        due = next_pull_at(PUBLISHED, due, settings)
    assert seen == [10, 60, 3660, 7260]  # hourly after the last age, until 3 hours


def test_a_sweep_claims_due_targets_moves_them_to_their_next_slot_and_sends_them(
    sqlite_engine, broker
):
    # Given targets due now, one due later, and one not published
    settings = make_settings()
    tenant = add_tenant(sqlite_engine)
    now = PUBLISHED + timedelta(minutes=16)
    due = published(sqlite_engine, tenant, 2)
    [later] = published(sqlite_engine, tenant, due=now + timedelta(minutes=1))
    [failed] = published(sqlite_engine, tenant, status=TargetStatus.FAILED)

    # When the scheduler sweeps
    sent = sweep(sqlite_engine, broker, settings, now)

    # Then one message names the due targets, asking for every metric
    assert sent == 2
    [message] = pulls(broker)
    assert message["tenant_id"] == tenant and message.get("job_id") is None
    assert sorted(message["target_ids"]) == sorted(due)
    assert message["metrics"] == list(METRICS)
    # And each moved to its next slot with one more pull; the others are untouched
    for target_id in due:
        target = load(sqlite_engine, target_id)
        assert target.metrics_due_at == PUBLISHED + timedelta(hours=1)
        assert target.metrics_pulls == 1
    assert load(sqlite_engine, later).metrics_pulls == 0
    assert load(sqlite_engine, failed).metrics_pulls == 0
    # And a second sweep at the same time finds nothing
    assert sweep(sqlite_engine, broker, settings, now) == 0


def test_a_target_is_pulled_daily_and_then_no_more(sqlite_engine, broker):
    # Given a target 29 and a half days old, due
    settings = make_settings()
    tenant = add_tenant(sqlite_engine)
    now = PUBLISHED + timedelta(days=29, hours=12)
    [target_id] = published(sqlite_engine, tenant, due=now)

    # When it is swept then, and at its next slot (day 30)
    sweep(sqlite_engine, broker, settings, now)
    next_due = load(sqlite_engine, target_id).metrics_due_at
    sweep(sqlite_engine, broker, settings, PUBLISHED + timedelta(days=30))

    # Then it was sent both times, and has no slot after the 30th day
    assert next_due == PUBLISHED + timedelta(days=30)
    assert len(pulls(broker)) == 2
    assert load(sqlite_engine, target_id).metrics_due_at is None
    assert sweep(sqlite_engine, broker, settings, PUBLISHED + timedelta(days=60)) == 0


def test_messages_are_per_tenant_in_chunks_and_a_sweep_is_bounded(sqlite_engine, broker):
    # Given more due targets of one tenant than a message names, and another tenant's
    settings = make_settings(analytics_pull_batch=CHUNK + 20)
    acme, globex = add_tenant(sqlite_engine), add_tenant(sqlite_engine, "Globex")
    many = published(sqlite_engine, acme, CHUNK + 10)
    theirs = published(sqlite_engine, globex, 15, due=PUBLISHED + timedelta(seconds=1))
    now = PUBLISHED + timedelta(minutes=20)

    # When the scheduler sweeps
    sent = sweep(sqlite_engine, broker, settings, now)

    # Then it took at most the batch, oldest due first, one tenant per message, ≤ CHUNK each
    assert sent == CHUNK + 20
    messages = pulls(broker)
    assert all(len(m["target_ids"]) <= CHUNK for m in messages)
    by_tenant = {
        t: sum(len(m["target_ids"]) for m in messages if m["tenant_id"] == t)
        for t in (acme, globex)
    }
    assert by_tenant == {globex: 15, acme: CHUNK + 5}
    assert set(theirs) <= {i for m in messages for i in m["target_ids"]}
    # And the rest is taken by the next sweep
    assert sweep(sqlite_engine, broker, settings, now) == 5
    assert {i for m in pulls(broker) for i in m["target_ids"]} >= set(many)


def test_with_the_broker_down_the_targets_stay_due(sqlite_engine):
    # Given a due target and a broker that cannot be reached (nothing listens on port 1)
    settings = make_settings()
    down = build_broker(make_settings(redis_url="redis://127.0.0.1:1/0"))
    tenant = add_tenant(sqlite_engine)
    [target_id] = published(sqlite_engine, tenant)
    now = PUBLISHED + timedelta(minutes=20)

    # When the scheduler sweeps
    sent = sweep(sqlite_engine, down, settings, now)

    # Then nothing was sent and the target is due again, its pull not counted
    target = load(sqlite_engine, target_id)
    assert sent == 0
    assert (target.metrics_due_at, target.metrics_pulls) == (now, 0)


def test_two_schedulers_on_postgresql_do_not_take_the_same_targets(pg_engine, broker):
    # Given two due targets, one of them locked by another scheduler's open transaction
    settings = make_settings()
    tenant = add_tenant(pg_engine)
    first, second = published(pg_engine, tenant, 2)
    now = PUBLISHED + timedelta(minutes=20)
    with pg_engine.connect() as other:
        transaction = other.begin()
        other.execute(text("SELECT id FROM targets WHERE id = :id FOR UPDATE"), {"id": first})

        # When this scheduler sweeps meanwhile
        sent = sweep(pg_engine, broker, settings, now)
        transaction.rollback()

    # Then it passed over the locked target and took the other one
    assert sent == 1
    [message] = pulls(broker)
    assert message["target_ids"] == [second]
    assert load(pg_engine, first).metrics_pulls == 0


def test_publishing_sets_the_first_slot(sqlite_engine):
    # Given a sandbox target due now
    settings = make_settings(publish_pacing=False)
    tenant = add_tenant(sqlite_engine)
    _, [target_id] = add_post(sqlite_engine, tenant, [add_account(sqlite_engine, tenant)])
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(Target)
            .where(col(Target.id) == target_id)
            .values(status=TargetStatus.QUEUED, version=2)
        )
    publisher = Publisher(
        engine=sqlite_engine, platforms=PlatformRegistry(sqlite_engine, settings), settings=settings
    )

    # When it is published
    assert publisher.publish(target_id, 2) == Result.PUBLISHED

    # Then its metrics are first due at the first pull age after it went out (the process's
    # ANALYTICS_PULL_AGES)
    target = load(sqlite_engine, target_id)
    assert target.published_at is not None and target.published_at <= utcnow()
    first_age = pull_ages(get_settings())[0]
    assert target.metrics_due_at == target.published_at + timedelta(seconds=first_age)
