"""The target lifecycle: the table of moves, the compare-and-set, and an outcome recorded alike
on SQLite (statement by statement, through SQLAlchemy) and PostgreSQL (one statement, straight
to psycopg)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common import lifecycle
from herald_common.db import session_scope
from herald_common.hot import Hot
from herald_common.lifecycle import IllegalMove, Outcome
from herald_common.lifecycle.states import TRANSITIONS, check_move
from herald_common.models import (
    Attempt,
    AttemptOutcome,
    Post,
    PostStatus,
    Target,
    TargetStatus,
)
from herald_common.platforms import PublishResult
from herald_common.timeutil import utcnow
from tests.conftest import add_account, add_post, add_tenant

S = TargetStatus


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each test runs on both databases (the two ways the hot statements are run)."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


def load(engine: Engine, model, id_):  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return session.get(model, id_)


def queued(engine: Engine, accounts: int = 1) -> tuple[str, list[str]]:
    """A post due a second ago with `accounts` targets, each queued at version 2."""
    tenant = add_tenant(engine)
    ids = [add_account(engine, tenant, handle=f"a{n}") for n in range(accounts)]
    post_id, targets = add_post(engine, tenant, ids)
    now = utcnow()
    with engine.begin() as db:
        lifecycle.queue_due(db, now, 100, now)
    return post_id, targets


# -- the table ------------------------------------------------------------------------------


def test_every_state_has_its_moves_and_nothing_leaves_published():
    # Given the table, I expect an entry for every state, and published final
    assert set(TRANSITIONS) == set(TargetStatus)
    assert TRANSITIONS[S.PUBLISHED] == frozenset()
    # and the protocol's own path allowed
    for a, b in [
        (S.SCHEDULED, S.QUEUED),
        (S.QUEUED, S.PUBLISHING),
        (S.PUBLISHING, S.PUBLISHED),
        (S.PUBLISHING, S.UNKNOWN),
        (S.RETRYING, S.QUEUED),
        (S.UNKNOWN, S.SCHEDULED),
    ]:
        check_move(a, b)


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    [
        (S.PUBLISHED, S.SCHEDULED),  # a post that went out, sent again
        (S.PUBLISHING, S.QUEUED),  # a claimed target handed to a second worker
        (S.SCHEDULED, S.PUBLISHING),  # a claim that skipped the queue
        (S.UNKNOWN, S.QUEUED),  # a person's decision skipped
        (S.FAILED, S.PUBLISHED),
    ],
)
def test_a_move_the_table_does_not_allow_is_refused_before_any_sql(
    sqlite_engine, from_status, to_status
):
    # Given a target in `from_status`
    _, [target_id] = queued(sqlite_engine)
    sent: list[str] = []
    event.listen(sqlite_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))

    # When code asks for a move the table does not allow, I expect IllegalMove and no SQL
    with pytest.raises(IllegalMove), sqlite_engine.begin() as db:
        lifecycle.move(db, target_id, from_status, 2, to_status, updated_at=utcnow())
    assert not [s for s in sent if s.lstrip().upper().startswith("UPDATE")]


def test_a_stamp_edits_a_row_in_any_state_without_moving_it(engine):
    # Given a published target
    _, [target_id] = queued(engine)
    with engine.begin() as db:
        assert lifecycle.move(db, target_id, S.QUEUED, 2, S.PUBLISHING, updated_at=utcnow())
        assert lifecycle.move(db, target_id, S.PUBLISHING, 3, S.PUBLISHED, updated_at=utcnow())

    # When it is stamped (a published target's row edited in place)
    with engine.begin() as db:
        assert lifecycle.stamp(db, target_id, S.PUBLISHED, 4, platform_url="https://x/1")

    # I expect the value set, state and version kept
    target = load(engine, Target, target_id)
    assert (target.status, target.version, target.platform_url) == (S.PUBLISHED, 4, "https://x/1")


def test_the_compare_and_set_refuses_a_stale_version_and_bumps_a_current_one(engine):
    # Given a target queued at version 2
    _, [target_id] = queued(engine)

    # When one move names version 1 and another version 2
    with engine.begin() as db:
        stale = lifecycle.move(db, target_id, S.QUEUED, 1, S.CANCELED, updated_at=utcnow())
        current = lifecycle.move(db, target_id, S.QUEUED, 2, S.CANCELED, updated_at=utcnow())

    # I expect only the second to move it, to version 3
    assert (stale, current) == (False, True)
    target = load(engine, Target, target_id)
    assert (target.status, target.version) == (S.CANCELED, 3)


@pytest.mark.parametrize(
    ("statuses", "approval", "expected"),
    [
        (["draft"], "pending", PostStatus.PENDING_APPROVAL),
        (["draft", "canceled"], "approved", PostStatus.APPROVED),
        (["draft"], "rejected", PostStatus.DRAFT),
        (["draft"], None, PostStatus.DRAFT),
        (["scheduled"], "approved", PostStatus.SCHEDULED),
        (["published", "failed"], "approved", PostStatus.PARTIALLY_PUBLISHED),
    ],
)
def test_a_draft_shows_its_approval_and_a_scheduled_post_its_targets(statuses, approval, expected):
    assert lifecycle.derive_post_status(statuses, approval) == expected


# -- recording an outcome ---------------------------------------------------------------------


def claim(engine: Engine, target_id: str) -> lifecycle.Claim:
    found = lifecycle.claim(Hot(engine), target_id, 2, utcnow())
    assert found is not None
    return found


def record(engine: Engine, claimed: lifecycle.Claim, outcome: Outcome) -> bool:
    with Hot(engine).transaction() as db:
        recorded = lifecycle.record_outcome(db, claimed, outcome, utcnow())
    return bool(recorded)  # on PostgreSQL, known once the transaction went out


PUBLISHED = Outcome(
    status=S.PUBLISHED,
    attempt=AttemptOutcome.PUBLISHED,
    result=PublishResult(platform_post_id="p-1", url="https://example.test/p-1", http_status=200),
    http_status=200,
)


def test_a_published_outcome_moves_the_target_writes_the_attempt_and_the_post(engine):
    # Given a claimed target of a post with one target
    post_id, [target_id] = queued(engine)
    claimed = claim(engine, target_id)
    assert (claimed.version, claimed.attempt_count, claimed.post_targets) == (3, 1, 1)

    # When its publish is recorded
    assert record(engine, claimed, PUBLISHED)

    # I expect the target published at version 4, one finished attempt, the post published
    target = load(engine, Target, target_id)
    assert (target.status, target.version, target.platform_post_id) == (S.PUBLISHED, 4, "p-1")
    assert target.metrics_due_at is not None and target.finished_at is not None
    with session_scope(engine) as session:
        [attempt] = session.exec(select(Attempt).where(Attempt.target_id == target_id)).all()
    assert (attempt.number, attempt.outcome, attempt.http_status) == (1, "published", 200)
    assert attempt.lateness_seconds is not None and attempt.lateness_seconds >= 1
    post = load(engine, Post, post_id)
    assert post.status == PostStatus.PUBLISHED and post.published_at is not None


def test_an_outcome_for_a_version_no_longer_claimed_writes_nothing(engine):
    # Given a claim that a takeover has since replaced (a new version)
    post_id, [target_id] = queued(engine)
    claimed = claim(engine, target_id)
    with engine.begin() as db:
        assert lifecycle.move(db, target_id, S.PUBLISHING, 3, started_at=utcnow())

    # When the first try's outcome comes in
    recorded = record(engine, claimed, PUBLISHED)

    # I expect nothing written: no move, no attempt, the post unchanged
    assert recorded is False
    target = load(engine, Target, target_id)
    assert (target.status, target.version) == (S.PUBLISHING, 4)
    with session_scope(engine) as session:
        assert session.exec(select(Attempt).where(Attempt.target_id == target_id)).all() == []
    assert load(engine, Post, post_id).status == PostStatus.SCHEDULED


def test_a_wait_refunds_the_attempt_and_keeps_the_post_scheduled(engine):
    # Given a claimed target (its attempt count went to 1)
    post_id, [target_id] = queued(engine)
    claimed = claim(engine, target_id)
    retry_at = utcnow() + timedelta(minutes=5)

    # When the platform asked to wait (a rate limit)
    waited = Outcome(
        status=S.RETRYING,
        attempt=AttemptOutcome.RETRYABLE,
        error="too many requests; waiting 300 s",
        error_kind="rate_limited",
        http_status=429,
        retry_at=retry_at,
        refund_attempt=True,
    )
    assert record(engine, claimed, waited)

    # I expect it retrying at that time with its attempt given back, the try on record
    target = load(engine, Target, target_id)
    assert (target.status, target.attempt_count, target.error_kind) == (
        S.RETRYING,
        0,
        "rate_limited",
    )
    assert abs((target.due_at - retry_at).total_seconds()) < 0.001
    with session_scope(engine) as session:
        [attempt] = session.exec(select(Attempt).where(Attempt.target_id == target_id)).all()
    assert (attempt.outcome, attempt.http_status) == ("retryable", 429)
    assert load(engine, Post, post_id).status == PostStatus.SCHEDULED


def test_the_last_of_two_targets_decides_the_post_from_both(engine):
    # Given a post with two claimed targets
    post_id, [first, second] = queued(engine, accounts=2)
    one, two = claim(engine, first), claim(engine, second)
    assert one.post_targets == 2

    # When one is published and the other fails
    failed = Outcome(
        status=S.FAILED, attempt=AttemptOutcome.PERMANENT, error="rejected", error_kind="permanent"
    )
    assert record(engine, one, PUBLISHED)
    assert load(engine, Post, post_id).status == PostStatus.SCHEDULED
    assert record(engine, two, failed)

    # I expect the post partially published
    assert load(engine, Post, post_id).status == PostStatus.PARTIALLY_PUBLISHED


def test_attempts_are_numbered_after_the_targets_earlier_ones(engine):
    # Given a target that was tried once before
    _, [target_id] = queued(engine)
    first = claim(engine, target_id)
    retry = Outcome(
        status=S.RETRYING,
        attempt=AttemptOutcome.RETRYABLE,
        error="unavailable",
        error_kind="retryable",
        retry_at=utcnow() - timedelta(seconds=1),
    )
    assert record(engine, first, retry)
    now = utcnow()
    with engine.begin() as db:
        [again] = lifecycle.queue_due(db, now, 10, now)

    # When its second try is recorded
    second = lifecycle.claim(Hot(engine), target_id, again.version, utcnow())
    assert second is not None
    assert record(engine, replace(second), PUBLISHED)

    # I expect attempts 1 and 2
    with session_scope(engine) as session:
        numbers = session.exec(
            select(Attempt.number).where(Attempt.target_id == target_id).order_by(Attempt.number)
        ).all()
    assert list(numbers) == [1, 2]
