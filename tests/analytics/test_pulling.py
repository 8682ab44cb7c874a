"""Pulling metrics of published targets: a client's job and the scheduler's pulls, on SQLite
and PostgreSQL, against the sandbox and a local Mastodon."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_analytics.actors import declare_actors
from herald_analytics.pulling import EveryTargetWaits, Puller
from herald_common.analytics import METRICS
from herald_common.broker import build_broker
from herald_common.contracts import PULL_ANALYTICS, PullAnalyticsPayload
from herald_common.db import session_scope
from herald_common.jobs import create_job, run_job, send_job
from herald_common.models import (
    Account,
    AccountStatus,
    Job,
    JobStatus,
    MetricSnapshot,
    SandboxDelivery,
    Target,
)
from herald_common.platforms import PlatformRegistry
from herald_common.platforms.sandbox import sandbox_metrics
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.workers import Deps
from tests.analytics.conftest import add_account, add_published
from tests.conftest import add_tenant, make_settings
from tests.platforms.servers import FakeMastodon

NOW = utcnow().replace(microsecond=0) + timedelta(hours=1)


def fixed(now: datetime = NOW) -> Callable[[], datetime]:
    return lambda: now


def puller(engine: Engine, registry: PlatformRegistry, settings: Settings) -> Puller:
    return Puller(engine=engine, platforms=registry, settings=settings, clock=fixed())


def start(engine: Engine, tenant: str, **payload: Any) -> str:
    with session_scope(engine) as session:
        job = create_job(session, tenant, PULL_ANALYTICS, payload)
    return job.id


def job_of(engine: Engine, job_id: str) -> Job:
    with session_scope(engine) as session:
        return session.get_one(Job, job_id)


def snapshots(engine: Engine, **where: str) -> list[MetricSnapshot]:
    with session_scope(engine) as session:
        query = select(MetricSnapshot).order_by(col(MetricSnapshot.taken_at))
        for name, value in where.items():
            query = query.where(getattr(MetricSnapshot, name) == value)
        return list(session.exec(query).all())


def target(engine: Engine, target_id: str) -> Target:
    with session_scope(engine) as session:
        return session.get_one(Target, target_id)


def sandbox_age(engine: Engine, target_id: str, now: datetime = NOW) -> tuple[str, float]:
    with session_scope(engine) as session:
        delivery_id = session.get_one(Target, target_id).platform_post_id
        delivery = session.get_one(SandboxDelivery, delivery_id)
    return delivery.id, (now - delivery.created_at).total_seconds()


def mastodon_account(engine, registry, tenant, server: FakeMastodon, token: str = "good-token"):
    return add_account(
        engine,
        registry,
        tenant,
        "mastodon",
        settings={"instance_url": server.url},
        credentials={"access_token": token},
    )


# -- a client's pull ----------------------------------------------------------------------------


def test_a_client_pull_writes_one_snapshot_per_target_with_the_metrics_asked_for(
    engine, registry, settings, mastodon
):
    # Given a post published to a sandbox account and a Mastodon account people engaged with
    tenant = add_tenant(engine)
    sandbox = add_account(engine, registry, tenant)
    toots = mastodon_account(engine, registry, tenant, mastodon)
    post_id, [on_sandbox, on_mastodon] = add_published(engine, registry, tenant, [sandbox, toots])
    mastodon.engage(target(engine, on_mastodon).platform_post_id, favourites=7, reblogs=2)
    job_id = start(engine, tenant, metrics=["likes", "views"])

    # When the job runs
    run_job(
        engine, PULL_ANALYTICS, job_id, puller(engine, registry, settings).pull_job, clock=fixed()
    )

    # Then it succeeded with one snapshot per target, counted as its progress
    job = job_of(engine, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"targets": 2, "snapshots": 2, "failed": []}
    assert (job.progress, job.total) == (2, 2)
    # And each snapshot holds the metrics asked for, as the platform counted them at that time
    [from_mastodon] = snapshots(engine, target_id=on_mastodon)
    assert (from_mastodon.likes, from_mastodon.views) == (7, None)  # Mastodon counts no views
    assert from_mastodon.reposts is None  # not asked for
    assert (from_mastodon.post_id, from_mastodon.platform) == (post_id, "mastodon")
    [from_sandbox] = snapshots(engine, target_id=on_sandbox)
    expected = sandbox_metrics(*sandbox_age(engine, on_sandbox))
    assert (from_sandbox.likes, from_sandbox.views) == (expected.likes, expected.views)
    assert (from_sandbox.replies, from_sandbox.impressions) == (None, None)
    assert from_sandbox.taken_at == NOW
    assert from_sandbox.tenant_id == tenant and from_sandbox.account_id == sandbox


def test_a_client_pull_covers_the_posts_and_days_it_names(engine, registry, settings):
    # Given posts published on three UTC days, late in the day
    tenant = add_tenant(engine)
    account = add_account(engine, registry, tenant)
    day = date(2026, 3, 10)
    late = [datetime.combine(day - timedelta(days=n), time(23, 59, 59), UTC) for n in (2, 1, 0)]
    posts = [add_published(engine, registry, tenant, [account], published_at=t) for t in late]
    other_tenant = add_tenant(engine, "Globex")
    add_published(engine, registry, other_tenant, [add_account(engine, registry, other_tenant)])
    pulls = puller(engine, registry, settings)

    def selected(**payload: Any) -> list[str]:
        return pulls.select(tenant, PullAnalyticsPayload(tenant_id=tenant, **payload))

    # Then days are inclusive at both ends, post_ids narrow it, other tenants never count
    assert selected(start=day - timedelta(days=1), end=day) == [posts[1][1][0], posts[2][1][0]]
    assert selected(end=day - timedelta(days=2)) == [posts[0][1][0]]
    assert selected(post_ids=[posts[0][0]]) == [posts[0][1][0]]
    assert len(selected()) == 3


def test_a_deleted_post_fails_alone_and_is_not_pulled_again(engine, registry, settings, mastodon):
    # Given a post whose Mastodon status was deleted, and its sandbox twin
    tenant = add_tenant(engine)
    sandbox = add_account(engine, registry, tenant)
    toots = mastodon_account(engine, registry, tenant, mastodon)
    _, [on_sandbox, on_mastodon] = add_published(engine, registry, tenant, [sandbox, toots])
    mastodon.statuses.clear()
    job_id = start(engine, tenant)

    # When the job runs
    run_job(engine, PULL_ANALYTICS, job_id, puller(engine, registry, settings).pull_job)

    # Then it succeeded with the other target, naming the one that failed and why
    job = job_of(engine, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result is not None and job.result["snapshots"] == 1
    [failed] = job.result["failed"]
    assert failed["target_id"] == on_mastodon and "is gone" in failed["reason"]
    # And the deleted one is off the schedule, the other keeps its slot
    assert target(engine, on_mastodon).metrics_due_at is None
    assert target(engine, on_sandbox).metrics_due_at is not None


def test_when_every_target_fails_for_now_the_job_is_tried_again(engine, registry, settings):
    # Given a platform that is down
    tenant = add_tenant(engine)
    down = add_account(engine, registry, tenant, settings={"metrics_fail": "retryable"})
    _, [target_id] = add_published(engine, registry, tenant, [down])
    job_id = start(engine, tenant)

    # When the job runs, it raises for Dramatiq to retry it, and waits queued
    with pytest.raises(EveryTargetWaits, match="service unavailable"):
        run_job(engine, PULL_ANALYTICS, job_id, puller(engine, registry, settings).pull_job)

    job = job_of(engine, job_id)
    assert job.status == JobStatus.QUEUED
    assert job.error and "trying again" in job.error
    assert snapshots(engine) == []
    assert target(engine, target_id).metrics_due_at is not None


def test_a_later_try_carries_on_where_the_last_one_stopped(engine, registry, settings):
    # Given a client's pull of three posts whose first try read one of them, then its worker
    # stopped (the job is back in the queue for its second try)
    tenant = add_tenant(engine)
    account = add_account(engine, registry, tenant)
    _, [first] = add_published(engine, registry, tenant, [account])
    for _ in range(2):
        add_published(engine, registry, tenant, [account])
    job_id = start(engine, tenant)
    pulling = puller(engine, registry, settings)
    pulling.pull(tenant, [first], ["likes"])

    def stop_after_claiming(run):
        raise SystemExit  # the worker went away: nothing records an outcome

    with pytest.raises(SystemExit):
        run_job(engine, PULL_ANALYTICS, job_id, stop_after_claiming)
    with session_scope(engine) as session:
        session.execute(update(Job).where(col(Job.id) == job_id).values(status=JobStatus.QUEUED))

    # When it runs again
    run_job(engine, PULL_ANALYTICS, job_id, pulling.pull_job)

    # Then it read only the two it had not, and counts all three as done
    job = job_of(engine, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert (job.progress, job.total) == (3, 3)
    assert [s.target_id for s in snapshots(engine, target_id=first)] == [first]
    assert len(snapshots(engine)) == 3


def test_a_rate_limit_skips_the_accounts_other_posts_but_not_other_accounts(
    engine, registry, settings, mastodon
):
    # Given two posts on one Mastodon account, one on the sandbox, and Mastodon limiting us
    tenant = add_tenant(engine)
    toots = mastodon_account(engine, registry, tenant, mastodon)
    sandbox = add_account(engine, registry, tenant)
    _, [first] = add_published(engine, registry, tenant, [toots], content="one")
    _, [second] = add_published(engine, registry, tenant, [toots], content="two")
    _, [on_sandbox] = add_published(engine, registry, tenant, [sandbox])
    mastodon.fail_next(
        1, 429, {"error": "Too many requests"}, {"Retry-After": "60"}, path="/api/v1/statuses/"
    )
    payload = PullAnalyticsPayload(tenant_id=tenant, target_ids=[first, second, on_sandbox])

    # When the scheduler's pull runs
    report = puller(engine, registry, settings).pull_due(payload)

    # Then Mastodon was asked once, both its targets wait for their next slot, the sandbox's
    # target was pulled
    statuses = [r for r in mastodon.requests if r.path.startswith("/api/v1/statuses/")]
    assert len(statuses) == 1
    assert report.snapshots == 1 and {f.target_id for f in report.failed} == {first, second}
    assert all(f.transient for f in report.failed)
    assert [s.target_id for s in snapshots(engine)] == [on_sandbox]
    assert target(engine, first).metrics_due_at is not None
    assert target(engine, second).metrics_due_at is not None


def test_a_refused_token_asks_for_a_refresh_and_skips_the_account(
    engine, registry, settings, mastodon
):
    # Given a Mastodon account whose token was revoked after it published twice
    tenant = add_tenant(engine)
    toots = mastodon_account(engine, registry, tenant, mastodon)
    _, [first] = add_published(engine, registry, tenant, [toots], content="one")
    _, [second] = add_published(engine, registry, tenant, [toots], content="two")
    mastodon.revoke()
    payload = PullAnalyticsPayload(tenant_id=tenant, target_ids=[first, second])

    # When the scheduler's pull runs
    report = puller(engine, registry, settings).pull_due(payload)

    # Then one call was refused, the account is due for a token refresh now, nothing stops
    assert len([r for r in mastodon.requests if r.path.startswith("/api/v1/statuses/")]) == 1
    assert report.snapshots == 0 and all(f.transient for f in report.failed)
    with session_scope(engine) as session:
        account = session.get_one(Account, toots)
    assert account.refresh_due_at == NOW
    assert target(engine, second).metrics_due_at is not None


def test_the_schedulers_pull_ends_what_cannot_be_read_and_keeps_what_can_wait(
    engine, registry, settings
):
    # Given targets on a working, a failing-for-now, a deleted and a disconnected account,
    # and another tenant's target named in the message
    tenant = add_tenant(engine)
    accounts = {
        kind: add_account(engine, registry, tenant, settings=options)
        for kind, options in {
            "ok": {},
            "down": {"metrics_fail": "retryable"},
            "gone": {"metrics_fail": "gone"},
            "disconnected": {},
        }.items()
    }
    targets = {
        kind: add_published(engine, registry, tenant, [account])[1][0]
        for kind, account in accounts.items()
    }
    with session_scope(engine) as session:
        session.execute(
            update(Account)
            .where(col(Account.id) == accounts["disconnected"])
            .values(status=AccountStatus.DISCONNECTED)
        )
    stranger = add_tenant(engine, "Globex")
    _, [theirs] = add_published(
        engine, registry, stranger, [add_account(engine, registry, stranger)]
    )
    payload = PullAnalyticsPayload(
        tenant_id=tenant, target_ids=[*targets.values(), theirs], metrics=list(METRICS)
    )

    # When the scheduler's pull runs
    report = puller(engine, registry, settings).pull_due(payload)

    # Then the working one has a full snapshot, the others are reported, the other tenant's
    # target is not touched
    assert report.targets == 4 and report.snapshots == 1
    [snapshot] = snapshots(engine)
    assert snapshot.target_id == targets["ok"]
    assert all(getattr(snapshot, name) is not None for name in METRICS)
    assert snapshot.extra == {"bookmarks": snapshot.likes // 5}
    # And what can wait keeps its slot; what cannot be read is never asked for again
    assert target(engine, targets["down"]).metrics_due_at is not None
    assert target(engine, targets["gone"]).metrics_due_at is None
    assert target(engine, targets["disconnected"]).metrics_due_at is None
    assert target(engine, theirs).metrics_due_at is not None


# -- the actor ----------------------------------------------------------------------------------


def test_the_actor_runs_a_client_pull_from_its_message(sqlite_engine):
    # Given the analytics actor on an in-process broker and worker
    settings = make_settings()
    broker = build_broker(settings)
    assert isinstance(broker, StubBroker)
    registry = PlatformRegistry(sqlite_engine, settings)
    declare_actors(
        broker,
        Deps(
            settings=settings,
            broker=broker,
            engine=lambda: sqlite_engine,
            platforms=lambda: registry,
        ),
    )
    tenant = add_tenant(sqlite_engine)
    account = add_account(sqlite_engine, registry, tenant)
    _, [target_id] = add_published(sqlite_engine, registry, tenant, [account])
    job_id = start(sqlite_engine, tenant, metrics=["views"])
    worker = dramatiq.Worker(broker, worker_timeout=100)
    worker.start()
    try:
        # When the job's message is sent
        assert send_job(sqlite_engine, broker, job_of(sqlite_engine, job_id))
        broker.join(PULL_ANALYTICS.queue, fail_fast=True)
        worker.join()
    finally:
        worker.stop()
        registry.close()

    # Then the worker pulled the target
    assert job_of(sqlite_engine, job_id).status == JobStatus.SUCCEEDED
    [snapshot] = snapshots(sqlite_engine)
    assert snapshot.target_id == target_id and snapshot.views is not None
    assert snapshot.likes is None
