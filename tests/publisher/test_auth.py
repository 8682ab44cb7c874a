"""The publisher on a refused token: refresh, try once more, else hold the target for re-auth.

Against SQLite and a local Mastodon that answers as its docs say (401 with its error body).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.crypto import generate_key
from herald_common.db import session_scope
from herald_common.models import Account, AccountStatus, Attempt, Post, Target, TargetStatus
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.tokens import RefreshResult, TokenKeeper
from herald_publisher.publishing import Publisher, Result
from tests.conftest import add_post, add_tenant, make_settings
from tests.platforms.servers import FakeMastodon, running
from tests.publisher.test_publishing import load, queue

REVOKED = {"error": "The access token was revoked"}


@pytest.fixture
def settings() -> Settings:
    return make_settings(HERALD_SECRET_KEYS=generate_key(), platform_allow_private_addresses=True)


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as server:
        yield server


@pytest.fixture
def registry(sqlite_engine: Engine, settings: Settings) -> Iterator[PlatformRegistry]:
    registry = PlatformRegistry(sqlite_engine, settings)
    yield registry
    registry.close()


@pytest.fixture
def publisher(sqlite_engine, registry, settings) -> Publisher:
    return Publisher(engine=sqlite_engine, platforms=registry, settings=settings)


@pytest.fixture
def keeper(sqlite_engine, registry, settings) -> TokenKeeper:
    return TokenKeeper(engine=sqlite_engine, platforms=registry, settings=settings)


def add_mastodon(engine: Engine, registry: PlatformRegistry, server: FakeMastodon) -> tuple:
    tenant = add_tenant(engine)
    with session_scope(engine) as session:
        account = Account(
            tenant_id=tenant,
            platform="mastodon",
            handle="@alice@example",
            settings={"instance_url": server.url},
            credentials=registry.credentials.seal({"access_token": server.token}),
        )
        session.add(account)
    _, [target_id] = add_post(engine, tenant, [account.id])
    return tenant, account.id, target_id


def outcomes(engine: Engine, target_id: str) -> list[str | None]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(Attempt.outcome)
                .where(Attempt.target_id == target_id)
                .order_by(Attempt.number)
            ).all()
        )


def test_a_401_refreshes_the_token_and_tries_once_more(
    sqlite_engine, registry, publisher, keeper, mastodon
):
    # Given a post whose first try is refused with 401 (the token had just expired)
    tenant, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    mastodon.fail_next(1, 401, REVOKED, path="/api/v1/statuses")

    # When it is published
    first = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect it held for a refresh (no attempt spent) and the refresh asked for
    assert first is Result.RETRYING
    target = load(sqlite_engine, Target, target_id)
    assert (target.error_kind, target.attempt_count) == ("auth_refresh", 0)
    assert "refreshing the account's token" in target.error
    assert load(sqlite_engine, Account, account_id).refresh_due_at is not None

    # When the token-refresher refreshes it, I expect the target due again at once
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED
    target = load(sqlite_engine, Target, target_id)
    assert target.due_at <= utcnow()

    # And the next try publishes, once
    assert publisher.publish(target_id, queue(sqlite_engine, target_id)) is Result.PUBLISHED
    assert len(mastodon.statuses) == 1
    assert outcomes(sqlite_engine, target_id) == ["needs_auth", "published"]


def test_a_401_again_after_a_refresh_needs_reauth_and_the_target_waits(
    sqlite_engine, registry, publisher, keeper, mastodon
):
    # Given a post refused with 401 twice, a refresh in between that went through
    tenant, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    mastodon.fail_next(2, 401, REVOKED, path="/api/v1/statuses")
    assert publisher.publish(target_id, queue(sqlite_engine, target_id)) is Result.RETRYING
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED

    # When it is tried once more and refused again
    result = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect no third try: the account needs connecting again, with Mastodon's words, and
    # the target waits for it (no attempt spent) until 48 h after its time
    assert result is Result.RETRYING
    account = load(sqlite_engine, Account, account_id)
    assert account.status == AccountStatus.NEEDS_REAUTH
    assert "revoked" in account.status_reason
    target = load(sqlite_engine, Target, target_id)
    assert (target.error_kind, target.attempt_count) == ("needs_reauth", 0)
    post = load(sqlite_engine, Post, target.post_id)
    assert target.due_at == post.scheduled_at + timedelta(hours=48)
    assert mastodon.statuses == {}


def test_a_target_of_an_account_needing_reauth_waits_without_an_attempt(
    sqlite_engine, registry, publisher, mastodon
):
    # Given an account already marked needs_reauth, and its post due now
    _, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    with session_scope(sqlite_engine) as session:
        account = session.get(Account, account_id)
        account.status = AccountStatus.NEEDS_REAUTH
        account.status_reason = "The access token was revoked"
        session.add(account)

    # When its message arrives
    result = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect it put back to wait, saying why, with no attempt row and no call
    assert result is Result.HELD
    target = load(sqlite_engine, Target, target_id)
    assert target.status == TargetStatus.RETRYING
    assert target.error == (
        "waiting for the account to be connected again: The access token was revoked"
    )
    assert outcomes(sqlite_engine, target_id) == []
    assert mastodon.requests == []


def test_reconnecting_releases_a_waiting_target_and_it_goes_out(
    sqlite_engine, registry, publisher, keeper, mastodon
):
    # Given a target waiting for its account to be reconnected
    tenant, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    mastodon.fail_next(2, 401, REVOKED, path="/api/v1/statuses")
    publisher.publish(target_id, queue(sqlite_engine, target_id))
    keeper.refresh(tenant, account_id)
    publisher.publish(target_id, queue(sqlite_engine, target_id))
    assert load(sqlite_engine, Account, account_id).status == AccountStatus.NEEDS_REAUTH

    # When a person reconnects it (new credentials through the API)
    from herald_api.schemas import AccountUpdate
    from herald_api.services.accounts import update_account

    with session_scope(sqlite_engine) as session:
        update_account(
            session,
            tenant,
            account_id,
            AccountUpdate(credentials={"access_token": mastodon.token}),
            platforms=registry,
        )

    # I expect the account active, the target due now, and the post to go out once
    assert load(sqlite_engine, Account, account_id).status == AccountStatus.ACTIVE
    assert load(sqlite_engine, Target, target_id).due_at <= utcnow()
    assert publisher.publish(target_id, queue(sqlite_engine, target_id)) is Result.PUBLISHED
    assert len(mastodon.statuses) == 1


def test_a_target_still_waiting_after_the_longest_wait_fails_with_the_reason(
    sqlite_engine, registry, settings, mastodon
):
    # Given a post due 49 hours ago whose account still needs re-auth
    _, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    with session_scope(sqlite_engine) as session:
        account = session.get(Account, account_id)
        account.status = AccountStatus.NEEDS_REAUTH
        account.status_reason = "The access token was revoked"
        session.add(account)
        target = session.get(Target, target_id)
        post = session.get(Post, target.post_id)
        post.scheduled_at = target.due_at = utcnow() - timedelta(hours=49)
        session.add_all([post, target])
    publisher = Publisher(engine=sqlite_engine, platforms=registry, settings=settings)

    # I expect it to fail now, with the reason, without calling the platform
    assert publisher.publish(target_id, queue(sqlite_engine, target_id)) is Result.FAILED
    target = load(sqlite_engine, Target, target_id)
    assert (target.error_kind, target.error) == ("needs_auth", "The access token was revoked")
    assert mastodon.requests == []


# -- interleavings a review found (each forced with a subclass that widens the window) ------


def test_an_account_marked_after_the_message_was_sent_is_held_by_the_claim(
    sqlite_engine, registry, settings, mastodon
):
    # Given a queued target whose account the refresher marks needs_reauth before a worker
    # takes the message (the claim reads the account in the statement that claims the target,
    # so there is no moment between a check and the claim for the mark to slip into)
    _, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    version = queue(sqlite_engine, target_id)
    with session_scope(sqlite_engine) as session:
        account = session.get_one(Account, account_id)
        account.status, account.status_reason = "needs_reauth", "revoked"
        session.add(account)

    # When the message is handled
    result = Publisher(engine=sqlite_engine, platforms=registry, settings=settings).publish(
        target_id, version
    )

    # I expect the target to wait (no attempt spent, no call), not to fail
    assert result is Result.HELD
    target = load(sqlite_engine, Target, target_id)
    assert (target.status, target.error_kind, target.attempt_count) == (
        "retrying",
        "needs_reauth",
        0,
    )
    assert mastodon.requests == []


def test_a_401_of_tokens_replaced_during_the_call_does_not_demote_the_account(
    sqlite_engine, registry, settings, mastodon
):
    # Given a target whose last refusal was followed by a refresh...
    _, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    mastodon.fail_next(2, 401, REVOKED, path="/api/v1/statuses")
    Publisher(engine=sqlite_engine, platforms=registry, settings=settings).publish(
        target_id, queue(sqlite_engine, target_id)
    )

    # ...and whose next try is claimed with the old tokens while the refresh commits mid-call
    class RefreshMidCall(Publisher):
        def _call_platform(self, claim):  # type: ignore[no-untyped-def]
            with session_scope(self.engine) as session:
                row = session.get(Account, claim.account.id)
                row.refreshed_at = utcnow()
                session.add(row)
            return super()._call_platform(claim)

    publisher = RefreshMidCall(engine=sqlite_engine, platforms=registry, settings=settings)
    result = publisher.publish(target_id, queue(sqlite_engine, target_id))

    # I expect the refusal of the old tokens to hold the target briefly, not to mark the
    # account (which now has new tokens) as needing re-auth
    assert result is Result.RETRYING
    assert load(sqlite_engine, Account, account_id).status == AccountStatus.ACTIVE
    target = load(sqlite_engine, Target, target_id)
    assert target.error_kind == "auth_refresh"
    assert target.due_at <= utcnow() + timedelta(seconds=settings.token_refresh_backoff_seconds)


def test_a_hold_decided_just_before_a_reconnect_does_not_park_the_target(
    sqlite_engine, registry, settings, mastodon
):
    # Given the claim read the account as needing re-auth, and it was reconnected since
    class StaleRead(Publisher):
        def _hold_for_auth(self, claim, now):  # type: ignore[no-untyped-def]
            stale = replace(claim.account, status=AccountStatus.NEEDS_REAUTH)
            return super()._hold_for_auth(replace(claim, account=stale), now)

    _, _, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    publisher = StaleRead(engine=sqlite_engine, platforms=registry, settings=settings)

    # I expect no hold (the row says active): the post goes out now, not in 48 hours
    assert publisher.publish(target_id, queue(sqlite_engine, target_id)) is Result.PUBLISHED
    assert len(mastodon.statuses) == 1


def test_repeated_401s_do_not_cut_short_a_failing_refreshs_backoff(
    sqlite_engine, registry, publisher, mastodon
):
    # Given a refresh that failed and waits 10 minutes for its backoff
    _, account_id, target_id = add_mastodon(sqlite_engine, registry, mastodon)
    later = utcnow() + timedelta(minutes=10)
    with session_scope(sqlite_engine) as session:
        account = session.get(Account, account_id)
        account.refresh_failures, account.refresh_due_at = 1, later
        session.add(account)
    mastodon.fail_next(1, 401, REVOKED, path="/api/v1/statuses")

    # When a publish is refused with 401
    assert publisher.publish(target_id, queue(sqlite_engine, target_id)) is Result.RETRYING

    # I expect the refresh to keep its time
    assert load(sqlite_engine, Account, account_id).refresh_due_at == later
