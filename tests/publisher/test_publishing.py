"""The publisher's exactly-once protocol, against SQLite and the sandbox platform."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.db import session_scope
from herald_common.lifecycle import backoff_seconds
from herald_common.models import Attempt, Post, SandboxDelivery, Target, TargetStatus
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.webhooks import Events
from herald_publisher.publishing import EarlyMessage, Publisher, Result
from tests.conftest import add_account, add_post, add_tenant, stored


def queue(engine: Engine, target_id: str) -> int:
    """Put a target in `queued` as the scheduler does when it is due; its new version."""
    with session_scope(engine) as session:
        target = session.get(Target, target_id)
        assert target is not None
        # The clock jumps to the target's time (a retry's due_at lies in the future).
        target.due_at = min(target.due_at, utcnow())
        target.status = TargetStatus.QUEUED
        target.version += 1
        target.queued_at = utcnow()
        session.add(target)
    return target.version


def load(engine: Engine, model, id_):  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.get(model, id_)


def deliveries(engine: Engine, outcome: str = "accepted") -> list[SandboxDelivery]:
    with session_scope(engine) as session:
        return list(
            session.exec(select(SandboxDelivery).where(SandboxDelivery.outcome == outcome)).all()
        )


def attempts(engine: Engine, target_id: str) -> list[Attempt]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(Attempt).where(Attempt.target_id == target_id).order_by(Attempt.number)
            ).all()
        )


@pytest.fixture
def publisher(sqlite_engine: Engine, settings: Settings) -> Publisher:
    return Publisher(
        engine=sqlite_engine, platforms=PlatformRegistry(sqlite_engine), settings=settings
    )


def test_a_queued_target_is_published_once_with_an_attempt_row(sqlite_engine, publisher):
    # Given a post due a second ago, queued for one sandbox account
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    post_id, [target_id] = add_post(sqlite_engine, tenant, [account], content="Hi there")
    version = queue(sqlite_engine, target_id)

    # When the publish message is handled
    result = publisher.publish(target_id, version)

    # I expect the target published, with the sandbox's id, and one attempt recorded
    assert result is Result.PUBLISHED
    target = load(sqlite_engine, Target, target_id)
    assert target.status == TargetStatus.PUBLISHED
    [delivery] = deliveries(sqlite_engine)
    assert delivery.content == "Hi there"
    assert target.platform_post_id == delivery.id
    assert target.platform_url == f"sandbox://demo/{delivery.id}"
    [attempt] = attempts(sqlite_engine, target_id)
    assert attempt.outcome == "published"
    assert attempt.number == 1
    assert attempt.lateness_seconds is not None and 0 < attempt.lateness_seconds < 30
    assert attempt.duration_ms is not None and attempt.duration_ms >= 0
    assert load(sqlite_engine, Post, post_id).status == "published"
    assert load(sqlite_engine, Post, post_id).published_at is not None


def test_the_same_message_delivered_twice_publishes_once(sqlite_engine, publisher):
    # Given a queued target
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, [target_id] = add_post(sqlite_engine, tenant, [account])
    version = queue(sqlite_engine, target_id)

    # When its message arrives twice
    first = publisher.publish(target_id, version)
    second = publisher.publish(target_id, version)

    # I expect one post on the platform and the second delivery acknowledged as stale
    assert (first, second) == (Result.PUBLISHED, Result.STALE)
    assert len(deliveries(sqlite_engine)) == 1
    assert len(attempts(sqlite_engine, target_id)) == 1


def test_a_message_of_an_older_version_does_nothing(sqlite_engine, publisher):
    # Given a target queued at version 2 and then rescheduled (version 3)
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, [target_id] = add_post(sqlite_engine, tenant, [account])
    version = queue(sqlite_engine, target_id)
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(Target)
            .where(Target.id == target_id)
            .values(status=TargetStatus.SCHEDULED, version=version + 1)
        )

    # When the old message arrives
    result = publisher.publish(target_id, version)

    # I expect nothing published
    assert result is Result.STALE
    assert deliveries(sqlite_engine) == []
    assert load(sqlite_engine, Target, target_id).status == TargetStatus.SCHEDULED


def test_a_retryable_failure_waits_with_backoff_then_succeeds(sqlite_engine, publisher):
    # Given an account that fails each post's first call with a 503
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant, settings={"fail": "retryable", "fail_times": 1})
    post_id, [target_id] = add_post(sqlite_engine, tenant, [account])

    # When it is published, fails, and is published again when due
    before = utcnow()
    first = publisher.publish(target_id, queue(sqlite_engine, target_id))
    retrying = load(sqlite_engine, Target, target_id)
    second = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect a retry planned at least 2 s later, then one published post, two attempts
    assert first is Result.RETRYING
    assert retrying.status == TargetStatus.RETRYING
    assert retrying.due_at >= before + timedelta(seconds=2)
    assert "service unavailable" in retrying.error
    assert second is Result.PUBLISHED
    assert [a.outcome for a in attempts(sqlite_engine, target_id)] == ["retryable", "published"]
    assert [a.http_status for a in attempts(sqlite_engine, target_id)] == [503, 200]
    assert len(deliveries(sqlite_engine)) == 1
    assert load(sqlite_engine, Post, post_id).status == "published"


def test_retryable_failures_give_up_after_the_attempt_limit(sqlite_engine, publisher, settings):
    # Given an account that always answers 503
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant, settings={"fail": "retryable"})
    post_id, [target_id] = add_post(sqlite_engine, tenant, [account])

    # When every attempt is made
    results = [
        publisher.publish(target_id, queue(sqlite_engine, target_id))
        for _ in range(settings.publish_max_attempts)
    ]

    # I expect retries, then a failure that says it gave up
    assert results == [Result.RETRYING] * (settings.publish_max_attempts - 1) + [Result.FAILED]
    target = load(sqlite_engine, Target, target_id)
    assert target.error_kind == "retryable"
    assert f"gave up after {settings.publish_max_attempts} attempts" in target.error
    assert load(sqlite_engine, Post, post_id).status == "failed"


def test_retry_after_is_honoured(sqlite_engine, publisher):
    # Given an account that answers 429 with Retry-After: 30
    tenant = add_tenant(sqlite_engine)
    account = add_account(
        sqlite_engine, tenant, settings={"fail": "rate_limited", "fail_times": 1, "retry_after": 30}
    )
    _, [target_id] = add_post(sqlite_engine, tenant, [account])

    # When it is published
    before = utcnow()
    publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect the retry no sooner than 30 s later, and the 429 on the attempt
    target = load(sqlite_engine, Target, target_id)
    assert target.due_at >= before + timedelta(seconds=30)
    assert attempts(sqlite_engine, target_id)[0].http_status == 429


def test_one_permanent_failure_of_two_targets_is_partially_published(sqlite_engine, publisher):
    # Given a post for a good account and one that rejects every post
    tenant = add_tenant(sqlite_engine)
    good = add_account(sqlite_engine, tenant, handle="good")
    bad = add_account(
        sqlite_engine,
        tenant,
        handle="bad",
        settings={"fail": "permanent", "fail_message": "Text contains a banned word"},
    )
    post_id, [good_target, bad_target] = add_post(sqlite_engine, tenant, [good, bad])

    # When both are published
    results = [publisher.publish(t, queue(sqlite_engine, t)) for t in (good_target, bad_target)]

    # I expect one published, one failed with the platform's words, the post partly published
    assert results == [Result.PUBLISHED, Result.FAILED]
    failed = load(sqlite_engine, Target, bad_target)
    assert (failed.error_kind, failed.error) == ("permanent", "Text contains a banned word")
    assert load(sqlite_engine, Post, post_id).status == "partially_published"
    assert len(deliveries(sqlite_engine)) == 1


def test_a_refused_token_with_no_way_to_refresh_holds_the_target_for_reauth(
    sqlite_engine, publisher
):
    # Given an account whose token the platform calls expired (the sandbox cannot refresh)
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant, settings={"fail": "needs_auth"})
    post_id, [target_id] = add_post(sqlite_engine, tenant, [account])

    # When it is published
    result = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect the account to need connecting again, and the target to wait for it, saying
    # why and spending no attempt, until 48 h after its time
    assert result is Result.RETRYING
    target = load(sqlite_engine, Target, target_id)
    assert target.error_kind == "needs_reauth"
    assert target.error.startswith("waiting for the account to be connected again")
    assert "expired" in target.error
    assert target.attempt_count == 0
    post = load(sqlite_engine, Post, post_id)
    assert target.due_at == post.scheduled_at + timedelta(hours=48)
    from herald_common.models import Account

    stored = load(sqlite_engine, Account, account)
    assert stored.status == "needs_reauth"
    assert "expired" in stored.status_reason
    assert attempts(sqlite_engine, target_id)[0].http_status == 401
    assert attempts(sqlite_engine, target_id)[0].outcome == "needs_auth"


def test_a_disconnected_account_fails_without_calling_the_platform(sqlite_engine, publisher):
    # Given a queued target whose account was then disconnected
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, [target_id] = add_post(sqlite_engine, tenant, [account])
    version = queue(sqlite_engine, target_id)
    with session_scope(sqlite_engine) as session:
        from herald_common.models import Account

        row = session.get(Account, account)
        row.deleted_at = utcnow()
        row.status = "disconnected"
        session.add(row)

    # When the message arrives
    result = publisher.publish(target_id, version)

    # I expect a clear failure and nothing sent
    assert result is Result.FAILED
    assert load(sqlite_engine, Target, target_id).error == "the account was disconnected"
    assert deliveries(sqlite_engine) == [] and deliveries(sqlite_engine, "failed_permanent") == []


class ExplodingAfterSend(PlatformRegistry):
    """A registry whose sandbox accepts the post (and keeps it, as a platform's own store
    would), then raises as a crashing adapter would."""

    def get(self, platform):  # type: ignore[no-untyped-def]
        adapter = super().get(platform)
        engine = self._engine

        class Exploding:
            def publish(self, request):  # type: ignore[no-untyped-def]
                stored(engine, adapter.publish(request))
                raise RuntimeError("connection reset after the request was sent")

            def lookup(self, request):  # type: ignore[no-untyped-def]
                return adapter.lookup(request)

        return Exploding()


def test_an_unexpected_error_after_sending_is_reconciled_not_posted_twice(sqlite_engine, settings):
    # Given an adapter that posts and then raises
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, [target_id] = add_post(sqlite_engine, tenant, [account])
    publisher = Publisher(
        engine=sqlite_engine, platforms=ExplodingAfterSend(sqlite_engine), settings=settings
    )

    # When the target is published
    result = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect the platform asked by idempotency key, and the target published, once
    assert result is Result.PUBLISHED
    [delivery] = deliveries(sqlite_engine)
    assert load(sqlite_engine, Target, target_id).platform_post_id == delivery.id


def test_backoff_doubles_from_two_seconds_and_is_capped(settings):
    # Given the default settings (2 s, capped at 300 s)
    # When the backoffs of successive attempts are computed
    delays = [backoff_seconds(settings, n) for n in (1, 2, 3, 20)]

    # I expect 2, 4, 8 s (plus at most 10% jitter) and the cap
    for delay, base in zip(delays, (2, 4, 8, 300), strict=True):
        assert base <= delay <= base * 1.1
    assert backoff_seconds(settings, 1, retry_after=60) == 60


def test_a_message_that_arrives_before_its_time_is_deferred_not_published(sqlite_engine, publisher):
    # Given a target queued for five seconds from now
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, [target_id] = add_post(
        sqlite_engine, tenant, [account], due_at=utcnow() + timedelta(seconds=5)
    )
    version = 2
    with session_scope(sqlite_engine) as session:
        session.execute(
            update(Target)
            .where(Target.id == target_id)
            .values(status=TargetStatus.QUEUED, version=version, queued_at=utcnow())
        )

    # When its message arrives now
    with pytest.raises(EarlyMessage) as early:
        publisher.publish(target_id, version)

    # I expect nothing published, and to be told how long to wait
    assert 4 < early.value.seconds <= 5
    assert deliveries(sqlite_engine) == []
    assert load(sqlite_engine, Target, target_id).status == TargetStatus.QUEUED


def test_a_rate_limit_waits_without_spending_attempts(sqlite_engine, publisher, settings):
    # Given an account rate-limited for more tries than the attempt limit allows
    tenant = add_tenant(sqlite_engine)
    limited_times = settings.publish_max_attempts + 2
    account = add_account(
        sqlite_engine,
        tenant,
        settings={"fail": "rate_limited", "fail_times": limited_times, "retry_after": 1},
    )
    _, [target_id] = add_post(sqlite_engine, tenant, [account])

    # When it is tried until it goes out
    results = [
        publisher.publish(target_id, queue(sqlite_engine, target_id))
        for _ in range(limited_times + 1)
    ]

    # Then every rate-limited try waited (none failed), and the post went out once
    assert results == [Result.RETRYING] * limited_times + [Result.PUBLISHED]
    assert len(deliveries(sqlite_engine)) == 1
    rows = attempts(sqlite_engine, target_id)
    assert [a.number for a in rows] == list(range(1, limited_times + 2))
    assert [a.http_status for a in rows[:-1]] == [429] * limited_times
    assert load(sqlite_engine, Target, target_id).attempt_count == 1


def test_a_rate_limit_that_never_lifts_fails_after_the_longest_wait(sqlite_engine, settings):
    # Given a publisher that waits for limits at most 10 s past a post's time
    publisher = Publisher(
        engine=sqlite_engine,
        platforms=PlatformRegistry(sqlite_engine),
        settings=settings.model_copy(update={"rate_limit_max_wait_seconds": 10}),
    )
    tenant = add_tenant(sqlite_engine)
    account = add_account(
        sqlite_engine, tenant, settings={"fail": "rate_limited", "retry_after": 30}
    )
    _, [target_id] = add_post(sqlite_engine, tenant, [account])

    # When the platform asks to wait 30 s
    result = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # Then the target fails with the platform's words and the reason it gave up
    assert result is Result.FAILED
    target = load(sqlite_engine, Target, target_id)
    assert target.error_kind == "rate_limited"
    assert "too many requests" in target.error and "gave up" in target.error


def test_outcome_events_add_no_statement_for_a_tenant_without_endpoints(sqlite_engine, settings):
    # Given a publisher that emits outcome events, and a tenant without webhook endpoints whose
    # first publish has been seen (what a process then knows for the cache's 10 s)
    events = Events(sqlite_engine, StubBroker(), settings)
    with_events = Publisher(
        engine=sqlite_engine,
        platforms=PlatformRegistry(sqlite_engine),
        settings=settings,
        events=events,
    )
    without = Publisher(
        engine=sqlite_engine, platforms=PlatformRegistry(sqlite_engine), settings=settings
    )
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, tenant)
    _, targets = add_post(sqlite_engine, tenant, [account])
    with_events.publish(targets[0], queue(sqlite_engine, targets[0]))

    def statements_of(publisher: Publisher) -> int:
        _, [target] = add_post(sqlite_engine, tenant, [account])
        version = queue(sqlite_engine, target)
        sent: list[str] = []

        def count(*args: object) -> None:
            sent.append(str(args[2]))

        event.listen(sqlite_engine, "before_cursor_execute", count)
        try:
            assert publisher.publish(target, version) is Result.PUBLISHED
        finally:
            event.remove(sqlite_engine, "before_cursor_execute", count)
        return len(sent)

    # When one more target of it is published with events and one without
    # I expect the same statements (8 on SQLite)
    assert statements_of(with_events) == statements_of(without)
