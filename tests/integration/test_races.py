"""API changes racing the scheduler and the publisher on PostgreSQL (row locks matter here).

Each test forces one interleaving: the API has read (and so locked) a post's targets, and at
that moment a worker claims a target or the scheduler dispatches it.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

import herald_api.services.posts as posts_service
from herald_api.schemas import PostUpdate, ResolveBody
from herald_common.broker import build_broker
from herald_common.db import session_scope
from herald_common.errors import NeedsAuth, TransientError
from herald_common.models import Attempt, Post, SandboxDelivery, Target, TargetStatus
from herald_common.platforms import PlatformRegistry
from herald_common.timeutil import utcnow
from herald_publisher.publishing import Publisher, Result
from herald_scheduler.dispatching import Dispatcher
from tests.conftest import add_account, add_post, add_tenant, make_settings


def parts(engine: Engine, **settings):  # type: ignore[no-untyped-def]
    values = make_settings(**settings)
    registry = PlatformRegistry(engine)
    scheduler = Dispatcher(
        engine=engine, broker=build_broker(values), platforms=registry, settings=values
    )
    return scheduler, Publisher(engine=engine, platforms=registry, settings=values), registry


def load(engine: Engine, model, id_):  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.get(model, id_)


def deliveries(engine: Engine) -> list[SandboxDelivery]:
    with session_scope(engine) as session:
        return list(
            session.exec(select(SandboxDelivery).where(SandboxDelivery.outcome == "accepted"))
        )


def queued_post(engine: Engine, content: str = "Old text"):  # type: ignore[no-untyped-def]
    scheduler, publisher, registry = parts(engine)
    tenant = add_tenant(engine)
    post_id, [target_id] = add_post(engine, tenant, [add_account(engine, tenant)], content=content)
    scheduler.dispatch_due(utcnow())
    return tenant, post_id, target_id, load(engine, Target, target_id).version, publisher, registry


@pytest.fixture
def claim_after_read(monkeypatch):  # type: ignore[no-untyped-def]
    """Make a worker try its claim right after the API has read the targets."""
    box: dict[str, object] = {}
    real = posts_service._targets

    def arm(publisher: Publisher, target_id: str, version: int) -> dict[str, object]:
        def targets_then_claim(session, ids, *, lock=False):  # type: ignore[no-untyped-def]
            rows = real(session, ids, lock=lock)
            if "worker" in box:  # once: the first time the API has read the targets
                return rows
            worker = threading.Thread(
                target=lambda: box.setdefault("result", publisher.publish(target_id, version))
            )
            worker.start()
            worker.join(0.5)  # long enough for an unhindered claim to commit
            box["worker"] = worker
            return rows

        monkeypatch.setattr(posts_service, "_targets", targets_then_claim)
        return box

    return arm


def test_a_post_deleted_as_a_worker_claims_it_is_never_published(pg_engine, claim_after_read):
    # Given a queued post, and a worker that claims it just after the API read its targets
    tenant, post_id, target_id, version, publisher, _ = queued_post(pg_engine)
    box = claim_after_read(publisher, target_id, version)

    # When the post is deleted
    with session_scope(pg_engine) as session:
        posts_service.delete_post(session, tenant, post_id)
    box["worker"].join(10)

    # I expect the claim to have waited for the delete and found nothing: no post went out
    assert box["result"] is Result.STALE
    assert deliveries(pg_engine) == []


def test_a_content_edit_as_a_worker_claims_it_publishes_the_new_text(pg_engine, claim_after_read):
    # Given a queued post, and a worker that claims it just after the API read its targets
    tenant, post_id, target_id, version, publisher, registry = queued_post(pg_engine)
    box = claim_after_read(publisher, target_id, version)

    # When its content is edited
    with session_scope(pg_engine) as session:
        posts_service.update_post(
            session, tenant, post_id, PostUpdate(content="New text"), platforms=registry
        )
    box["worker"].join(10)

    # I expect what went out to be what the API accepted
    assert box["result"] is Result.PUBLISHED
    assert [d.content for d in deliveries(pg_engine)] == ["New text"]


def test_an_account_added_as_a_worker_claims_is_counted_in_the_posts_status(
    pg_engine, claim_after_read
):
    # Given a queued post, and a worker that claims it just after the API read its targets
    tenant, post_id, target_id, version, publisher, registry = queued_post(pg_engine)
    with session_scope(pg_engine) as session:
        first = session.get_one(Target, target_id).account_id
    second = add_account(pg_engine, tenant, handle="second")
    box = claim_after_read(publisher, target_id, version)

    # When a second account is added to the post (the claim waits for the change to commit)
    with session_scope(pg_engine) as session:
        posts_service.update_post(
            session, tenant, post_id, PostUpdate(account_ids=[first, second]), platforms=registry
        )
    box["worker"].join(10)

    # I expect the first target published, and the post still scheduled: its status counts
    # the target that joined while the worker waited
    assert box["result"] is Result.PUBLISHED
    with session_scope(pg_engine) as session:
        statuses = sorted(
            session.exec(select(Target.status).where(Target.post_id == post_id)).all()
        )
        assert statuses == ["published", "scheduled"]
        assert session.get_one(Post, post_id).status == "scheduled"


def test_a_cancel_as_the_scheduler_dispatches_wins(pg_engine, monkeypatch):
    # Given a due post, and a scheduler tick right after the API read its targets
    scheduler, _, _ = parts(pg_engine)
    tenant = add_tenant(pg_engine)
    post_id, [target_id] = add_post(pg_engine, tenant, [add_account(pg_engine, tenant)])
    real = posts_service._targets
    dispatched: list[int] = []

    def targets_then_dispatch(session, ids, *, lock=False):  # type: ignore[no-untyped-def]
        rows = real(session, ids, lock=lock)
        dispatched.append(scheduler.dispatch_due(utcnow())[0])
        return rows

    monkeypatch.setattr(posts_service, "_targets", targets_then_dispatch)

    # When the post is canceled
    with session_scope(pg_engine) as session:
        posts_service.cancel_post(session, tenant, post_id)

    # I expect the scheduler to have passed over the locked target, and the post canceled
    assert dispatched == [0]
    assert load(pg_engine, Target, target_id).status == TargetStatus.CANCELED
    assert load(pg_engine, Post, post_id).status == "canceled"
    assert scheduler.dispatch_due(utcnow()) == (0, 0)


class BrokenAdapter:
    """Raises before sending anything; its lookup finds nothing, or raises `lookup_error`."""

    name = "sandbox"

    def __init__(self, lookup_error: Exception | None = None) -> None:
        self.calls = 0
        self.lookup_error = lookup_error

    def publish(self, request):  # type: ignore[no-untyped-def]
        self.calls += 1
        raise RuntimeError("bug while building the request")

    def lookup(self, request):  # type: ignore[no-untyped-def]
        if self.lookup_error:
            raise self.lookup_error


def test_an_adapter_that_keeps_crashing_is_retried_with_backoff_then_failed(pg_engine):
    # Given an adapter that raises unexpectedly every time (and never sent anything)
    scheduler, publisher, registry = parts(pg_engine, publish_max_attempts=3)
    adapter = BrokenAdapter()
    registry._adapters["sandbox"] = adapter
    tenant = add_tenant(pg_engine)
    post_id, [target_id] = add_post(pg_engine, tenant, [add_account(pg_engine, tenant)])

    # When its message is handled, each time as soon as the target is due again
    results = []
    for _ in range(5):
        target = load(pg_engine, Target, target_id)
        if target.status not in ("scheduled", "retrying"):
            break
        assert target.due_at is not None
        time.sleep(max(0.0, (target.due_at - utcnow()).total_seconds()))
        if target.status == "retrying":
            assert target.due_at > target.updated_at  # a backoff, not "now"
        scheduler.dispatch_due(target.due_at)
        results.append(publisher.publish(target_id, load(pg_engine, Target, target_id).version))

    # I expect three attempts, then a failure that says why
    assert results == [Result.RETRYING, Result.RETRYING, Result.FAILED]
    assert adapter.calls == 3
    target = load(pg_engine, Target, target_id)
    assert "gave up after 3 attempts" in target.error
    assert load(pg_engine, Post, post_id).status == "failed"


def test_a_stuck_target_whose_lookup_is_refused_becomes_unknown_and_can_be_retried(pg_engine):
    # Given a target left publishing, on an account whose token the platform now refuses
    scheduler, publisher, registry = parts(pg_engine, reconcile_after_seconds=0.001)
    registry._adapters["sandbox"] = BrokenAdapter(NeedsAuth("token revoked", http_status=401))
    tenant = add_tenant(pg_engine)
    post_id, [target_id] = add_post(pg_engine, tenant, [add_account(pg_engine, tenant)])
    scheduler.dispatch_due(utcnow())
    assert publisher.publish(target_id, load(pg_engine, Target, target_id).version) is (
        Result.UNKNOWN
    )
    unknown = load(pg_engine, Target, target_id)
    assert unknown.status == TargetStatus.UNKNOWN
    assert "asking sandbox failed (token revoked)" in unknown.error

    # (it was `unknown`, with the platform's reason)
    # When a person who checked the account resolves it with "retry"
    with session_scope(pg_engine) as session:
        posts_service.resolve_target(
            session, tenant, post_id, target_id, ResolveBody(outcome="retry")
        )

    # I expect it scheduled again
    target = load(pg_engine, Target, target_id)
    assert target.status == TargetStatus.SCHEDULED
    assert load(pg_engine, Post, post_id).status == "scheduled"


def test_a_stuck_target_whose_lookups_keep_failing_reaches_a_person(pg_engine):
    # Given a target left publishing, whose platform answers every lookup with a 503
    scheduler, publisher, registry = parts(
        pg_engine, reconcile_after_seconds=0.001, reconcile_give_up_seconds=3600
    )
    registry._adapters["sandbox"] = BrokenAdapter(TransientError("unavailable", http_status=503))
    tenant = add_tenant(pg_engine)
    _, [target_id] = add_post(pg_engine, tenant, [add_account(pg_engine, tenant)])
    scheduler.dispatch_due(utcnow())
    version = load(pg_engine, Target, target_id).version

    # When the publish ends unexpectedly and the lookup fails
    assert publisher.publish(target_id, version) is Result.LOST

    # Then the target waits in publishing for the next reconciliation...
    assert load(pg_engine, Target, target_id).status == TargetStatus.PUBLISHING

    # ...and once it has been stuck longer than the give-up age, it goes to a person
    with session_scope(pg_engine) as session:
        [attempt] = session.exec(select(Attempt).where(Attempt.target_id == target_id)).all()
        attempt.started_at = utcnow() - timedelta(hours=2)
        session.add(attempt)
    scheduler.reconcile_stuck(utcnow())
    target = load(pg_engine, Target, target_id)
    assert target.status == TargetStatus.UNKNOWN
    assert "kept failing for 2.0 h (unavailable)" in target.error
