"""Cron entries fire once per occurrence across replicas; token refreshes are sent when due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dramatiq import Message
from dramatiq.brokers.stub import StubBroker
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.broker import build_broker
from herald_common.contracts import REFRESH_ACCOUNT
from herald_common.db import session_scope
from herald_common.models import Account, AccountStatus, CronRun
from herald_common.platforms import PlatformRegistry
from herald_common.timeutil import utcnow
from herald_scheduler.cron import Cron, CronEntry
from herald_scheduler.dispatching import Dispatcher
from tests.conftest import add_account, add_tenant, make_settings

SUNDAY = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)


def refresh_messages(broker: StubBroker) -> list[dict]:
    return [Message.decode(m).kwargs for m in broker.queues[REFRESH_ACCOUNT.queue].queue]


@pytest.fixture
def broker() -> StubBroker:
    broker = build_broker(make_settings())
    assert isinstance(broker, StubBroker)
    return broker


def runs(engine: Engine) -> list[CronRun]:
    with session_scope(engine) as session:
        rows = list(session.exec(select(CronRun)).all())
        session.expunge_all()
        return rows


def test_the_latest_occurrence_is_at_or_before_now() -> None:
    entry = CronEntry("weekly", "0 0 * * 0", lambda now: "")
    assert entry.latest(SUNDAY) == SUNDAY
    assert entry.latest(SUNDAY + timedelta(seconds=59)) == SUNDAY
    assert entry.latest(SUNDAY - timedelta(seconds=1)) == SUNDAY - timedelta(days=7)


def test_two_replicas_fire_each_occurrence_once(sqlite_engine) -> None:
    # Given two schedulers with the same weekly entry
    calls: list[str] = []
    entry = CronEntry("weekly", "0 0 * * 0", lambda now: calls.append("run") or "done")
    first = Cron(sqlite_engine, [entry], identity="a")
    second = Cron(sqlite_engine, [entry], identity="b")

    # When both tick over Sunday midnight, many times
    fired = []
    for seconds in (0, 1, 2, 30):
        now = SUNDAY + timedelta(seconds=seconds)
        fired += first.fire_due(now) + second.fire_due(now)

    # I expect one firing, recorded with who fired it and what it did
    assert fired == ["weekly"] and calls == ["run"]
    [run] = runs(sqlite_engine)
    assert (run.name, run.fire_at, run.fired_by, run.result) == ("weekly", SUNDAY, "a", "done")

    # And the next week's occurrence fires again, once
    next_week = SUNDAY + timedelta(days=7, seconds=5)
    assert second.fire_due(next_week) + first.fire_due(next_week) == ["weekly"]
    assert len(calls) == 2


def test_a_missed_occurrence_fires_late_within_grace_and_not_after(sqlite_engine) -> None:
    calls: list[datetime] = []
    entry = CronEntry("weekly", "0 0 * * 0", lambda now: calls.append(now) or "", 3600)
    # A scheduler that was down at midnight and starts at 00:30 catches up...
    assert Cron(sqlite_engine, [entry]).fire_due(SUNDAY + timedelta(minutes=30)) == ["weekly"]
    # ...one that starts on Wednesday does not run last Sunday's
    wednesday = SUNDAY + timedelta(days=3)
    assert Cron(sqlite_engine, [entry]).fire_due(wednesday) == []
    assert len(calls) == 1


def test_a_failing_entry_is_recorded_and_not_fired_again(sqlite_engine) -> None:
    def boom(now: datetime) -> str:
        raise RuntimeError("nope")

    cron = Cron(sqlite_engine, [CronEntry("broken", "0 0 * * 0", boom)])
    assert cron.fire_due(SUNDAY) == ["broken"]
    assert cron.fire_due(SUNDAY + timedelta(seconds=1)) == []
    assert runs(sqlite_engine)[0].result == "failed: RuntimeError"


def test_a_bad_cron_expression_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="token_refresh_cron"):
        make_settings(token_refresh_cron="every sunday")


def dispatcher(engine: Engine, broker: StubBroker, **settings: object) -> Dispatcher:
    config = make_settings(**settings)
    return Dispatcher(
        engine=engine, broker=broker, platforms=PlatformRegistry(engine, config), settings=config
    )


def add_platform_account(engine: Engine, tenant: str, platform: str, **values: object) -> str:
    with session_scope(engine) as session:
        account = Account(tenant_id=tenant, platform=platform, handle="a", **values)
        session.add(account)
    return account.id


def test_expiring_and_asked_for_accounts_get_one_refresh_message(sqlite_engine, broker) -> None:
    # Given accounts: expiring in 10 min, in 2 h, asked for by a person, and one needing
    # re-auth whose token is expiring too
    tenant = add_tenant(sqlite_engine)
    now = utcnow()
    soon = add_platform_account(
        sqlite_engine, tenant, "x", token_expires_at=now + timedelta(minutes=10)
    )
    add_platform_account(sqlite_engine, tenant, "x", token_expires_at=now + timedelta(hours=2))
    asked = add_platform_account(sqlite_engine, tenant, "mastodon", refresh_due_at=now)
    add_platform_account(
        sqlite_engine,
        tenant,
        "x",
        token_expires_at=now + timedelta(minutes=1),
        status=AccountStatus.NEEDS_REAUTH,
    )
    scheduler = dispatcher(sqlite_engine, broker)

    # When the scheduler ticks twice
    first = scheduler.tick()
    second = scheduler.tick()

    # I expect one message each for the expiring and the asked-for accounts, and no more
    assert (first.refreshes, second.refreshes) == (2, 0)
    sent = {m["account_id"]: m for m in refresh_messages(broker)}
    assert set(sent) == {soon, asked}
    assert sent[soon]["tenant_id"] == tenant


def test_a_lost_refresh_message_is_sent_again(sqlite_engine, broker) -> None:
    tenant = add_tenant(sqlite_engine)
    add_platform_account(sqlite_engine, tenant, "x", refresh_due_at=utcnow())
    scheduler = dispatcher(sqlite_engine, broker, requeue_after_seconds=60)
    assert scheduler.tick().refreshes == 1
    # Nobody handled it (the broker lost it): two minutes later it goes again
    later = utcnow() + timedelta(minutes=2)
    scheduler.clock = lambda: later
    assert scheduler.tick().refreshes == 1


def test_the_weekly_entry_asks_every_active_account_with_tokens(sqlite_engine, broker) -> None:
    # Given an active X account, a sandbox one (nothing to refresh) and a deleted one
    tenant = add_tenant(sqlite_engine)
    x = add_platform_account(sqlite_engine, tenant, "x")
    add_account(sqlite_engine, tenant)
    add_platform_account(sqlite_engine, tenant, "mastodon", deleted_at=utcnow())
    scheduler = dispatcher(
        sqlite_engine, broker, token_refresh_cron="0 0 * * 0", cleanup_cron="30 12 1 1 *"
    )
    scheduler.clock = lambda: SUNDAY + timedelta(seconds=1)

    # When the scheduler ticks at Sunday midnight
    report = scheduler.tick()

    # I expect the entry to fire and one refresh message for the X account only
    assert report.cron == ["token-refresh-weekly"]
    assert [m["account_id"] for m in refresh_messages(broker)] == [x]
    assert runs(sqlite_engine)[0].result == "1 account(s) asked to refresh"
