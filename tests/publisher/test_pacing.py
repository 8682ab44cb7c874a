"""Pacing: a full rate window puts a target back on the schedule; it never fails or posts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dramatiq.rate_limits.backends import StubBackend

from herald_common.models import Target, TargetStatus
from herald_common.pacing import Pacer
from herald_common.platforms import Pace, PlatformRegistry
from herald_common.timeutil import utcnow
from herald_publisher.publishing import Publisher, Result
from tests.conftest import add_account, add_post, add_tenant
from tests.publisher.test_publishing import attempts, deliveries, load, queue


@pytest.fixture
def publisher(sqlite_engine, settings) -> Publisher:
    return Publisher(
        engine=sqlite_engine,
        platforms=PlatformRegistry(sqlite_engine, settings),
        settings=settings,
        pacer=Pacer(StubBackend(), namespace="test"),
    )


def test_a_burst_to_one_account_is_paced_not_failed(sqlite_engine, publisher):
    # Given an account whose platform allows 2 posts a minute, and 3 posts due now
    tenant = add_tenant(sqlite_engine)
    account = add_account(
        sqlite_engine, tenant, settings={"pace_limit": 2, "pace_window_seconds": 60}
    )
    targets = [add_post(sqlite_engine, tenant, [account])[1][0] for _ in range(3)]
    versions = [queue(sqlite_engine, t) for t in targets]

    # When the three messages are handled
    before = utcnow()
    results = [publisher.publish(t, v) for t, v in zip(targets, versions, strict=True)]

    # Then two go out and the third waits, with the reason, having spent no attempt
    assert results == [Result.PUBLISHED, Result.PUBLISHED, Result.PACED]
    assert len(deliveries(sqlite_engine)) == 2
    paced = load(sqlite_engine, Target, targets[2])
    assert paced.status == TargetStatus.RETRYING
    assert paced.error_kind == "paced"
    assert paced.error == (
        "paced: sandbox allows 2 posts per 1 minute for this account; waiting 30 s for a slot"
    )
    assert paced.attempt_count == 0
    assert attempts(sqlite_engine, targets[2]) == []
    assert before + timedelta(seconds=29) < paced.due_at < utcnow() + timedelta(seconds=31)
    # And its old message is stale now
    assert publisher.publish(targets[2], versions[2]) is Result.STALE


def test_paces_are_per_account(sqlite_engine, publisher):
    # Given two accounts allowed 1 post a minute each
    tenant = add_tenant(sqlite_engine)
    pace = {"pace_limit": 1, "pace_window_seconds": 60}
    first = add_account(sqlite_engine, tenant, handle="one", settings=pace)
    second = add_account(sqlite_engine, tenant, handle="two", settings=pace)
    _, [a, b] = add_post(sqlite_engine, tenant, [first, second])

    # When both targets are handled
    results = [publisher.publish(t, queue(sqlite_engine, t)) for t in (a, b)]

    # Then neither waits for the other
    assert results == [Result.PUBLISHED, Result.PUBLISHED]


def test_a_stale_or_early_message_takes_no_slot(sqlite_engine, publisher):
    # Given an account allowed 1 post a minute and a target queued at v2
    tenant = add_tenant(sqlite_engine)
    account = add_account(
        sqlite_engine, tenant, settings={"pace_limit": 1, "pace_window_seconds": 60}
    )
    _, [target] = add_post(sqlite_engine, tenant, [account])
    version = queue(sqlite_engine, target)

    # When an outdated message comes first
    assert publisher.publish(target, version - 1) is Result.STALE

    # Then the slot is still there for the real one
    assert publisher.publish(target, version) is Result.PUBLISHED


def test_long_windows_use_fixed_buckets_and_short_ones_slide():
    # Given a pacer and paces of 5 minutes and 24 hours
    pacer = Pacer(StubBackend(), namespace="test")
    short, long = Pace("account", 2, 300), Pace("platform", 1, 86400)

    # Then each admits its limit and refuses the next, with its own reason
    assert [pacer.admit("x", "a", [short]) for _ in range(2)] == [None, None]
    refused = pacer.admit("x", "a", [short])
    assert refused is not None and refused.wait_seconds == 150
    assert pacer.admit("x", "b", [long]) is None
    refused = pacer.admit("x", "c", [long])  # platform scope: another account shares it
    assert refused is not None
    assert refused.reason.startswith("paced: x allows 1 posts per 24 hours for all x accounts")
    assert refused.wait_seconds == 900  # capped
