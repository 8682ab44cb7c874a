"""TokenKeeper: one refresh per account under a lease, failures classified, held targets
released; against SQLite and a local Bluesky PDS / Mastodon that answer as their docs say."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_common.crypto import generate_key
from herald_common.db import session_scope
from herald_common.models import Account, AccountStatus, Target, TargetStatus
from herald_common.platforms import PlatformRegistry, PublishRequest, account_ref
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from herald_common.tokens import RefreshResult, TokenKeeper, request_refresh
from tests.conftest import add_post, add_tenant, make_settings
from tests.platforms.servers import FakeMastodon, FakePDS, running

REFRESH = "/xrpc/com.atproto.server.refreshSession"
CREATE = "/xrpc/com.atproto.server.createSession"


@pytest.fixture
def settings() -> Settings:
    return make_settings(HERALD_SECRET_KEYS=generate_key(), platform_allow_private_addresses=True)


@pytest.fixture
def registry(sqlite_engine: Engine, settings: Settings) -> Iterator[PlatformRegistry]:
    registry = PlatformRegistry(sqlite_engine, settings)
    yield registry
    registry.close()


@pytest.fixture
def keeper(sqlite_engine: Engine, registry: PlatformRegistry, settings: Settings) -> TokenKeeper:
    return TokenKeeper(engine=sqlite_engine, platforms=registry, settings=settings)


@pytest.fixture
def pds() -> Iterator[FakePDS]:
    server = FakePDS()
    server.jwt = True
    server.access_ttl = 600  # expires in 10 minutes: inside the 15-minute window
    with running(server):
        yield server


def add_bluesky(engine: Engine, registry: PlatformRegistry, pds: FakePDS, tenant: str) -> str:
    session_tokens = pds.issue_tokens()
    credentials = {"app_password": pds.password, **session_tokens}
    with session_scope(engine) as session:
        account = Account(
            tenant_id=tenant,
            platform="bluesky",
            handle=pds.handle,
            settings={"service_url": pds.url},
            credentials=registry.credentials.seal(credentials),
            token_expires_at=utcnow() + timedelta(seconds=pds.access_ttl),
        )
        session.add(account)
    return account.id


def load(engine: Engine, account_id: str) -> Account:
    with session_scope(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None
        session.expunge(account)
        return account


def target_of(engine: Engine, target_id: str) -> Target:
    with session_scope(engine) as session:
        target = session.get(Target, target_id)
        assert target is not None
        session.expunge(target)
        return target


def test_a_token_expiring_within_the_window_is_refreshed_and_stored(
    sqlite_engine, registry, keeper, pds
):
    # Given a Bluesky account whose access token expires in 10 minutes
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    before = registry.credentials_of(load(sqlite_engine, account_id))

    # When the keeper refreshes it
    result = keeper.refresh(tenant, account_id)

    # I expect one refreshSession call, the rotated tokens stored sealed, and the new expiry
    assert result is RefreshResult.REFRESHED
    assert len(pds.calls(REFRESH)) == 1
    account = load(sqlite_engine, account_id)
    after = registry.credentials_of(account)
    assert after["refreshJwt"] != before["refreshJwt"]
    assert after["app_password"] == pds.password
    assert before["refreshJwt"] not in (account.credentials or "")
    assert account.status == AccountStatus.ACTIVE
    assert account.refreshed_at is not None
    assert account.token_expires_at > utcnow() + timedelta(seconds=590)
    assert account.refresh_started_at is None


def test_a_second_refresh_right_after_finds_nothing_due_and_calls_nobody(
    sqlite_engine, registry, keeper, pds
):
    # Given an account just refreshed (two messages for it were sent at once)
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    pds.access_ttl = 7200
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED

    # When the second message is handled
    result = keeper.refresh(tenant, account_id)

    # I expect it to do nothing: a rotating refresh token is never spent twice
    assert result is RefreshResult.SKIPPED
    assert len(pds.calls(REFRESH)) == 1


def test_threads_refreshing_one_account_at_once_make_one_call(sqlite_engine, registry, keeper, pds):
    # Given an expiring account and eight threads told to refresh it at the same moment
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    pds.access_ttl = 7200
    start = threading.Barrier(8)
    results: list[RefreshResult] = []

    def refresh() -> None:
        start.wait()
        results.append(keeper.refresh(tenant, account_id))

    threads = [threading.Thread(target=refresh) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # I expect exactly one of them to refresh, and the platform to see one call
    assert sorted(results).count(RefreshResult.REFRESHED) == 1
    assert len(pds.calls(REFRESH)) == 1
    assert load(sqlite_engine, account_id).status == AccountStatus.ACTIVE


def test_a_held_lease_is_respected_and_a_dead_one_is_taken_over(
    sqlite_engine, registry, keeper, pds, settings
):
    # Given an account another worker started refreshing a moment ago
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    with session_scope(sqlite_engine) as session:
        account = session.get(Account, account_id)
        account.status = AccountStatus.REFRESHING
        account.refresh_started_at = utcnow()
        session.add(account)

    # When this worker is asked too, I expect it to leave the account alone
    assert keeper.refresh(tenant, account_id) is RefreshResult.SKIPPED
    assert pds.calls(REFRESH) == []

    # When that worker died long ago (its lease is older than the lease time)
    with session_scope(sqlite_engine) as session:
        account = session.get(Account, account_id)
        account.refresh_started_at = utcnow() - timedelta(
            seconds=settings.token_refresh_lease_seconds + 1
        )
        session.add(account)

    # I expect the refresh to be taken over and finished
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED
    assert load(sqlite_engine, account_id).status == AccountStatus.ACTIVE


def test_an_account_not_due_is_not_refreshed(sqlite_engine, registry, keeper, pds):
    # Given an account whose token expires in two hours, with no refresh asked for
    pds.access_ttl = 7200
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    with session_scope(sqlite_engine) as session:
        account = session.get(Account, account_id)
        account.token_expires_at = utcnow() + timedelta(hours=2)
        session.add(account)

    # I expect nothing to happen; once a refresh is asked for, it is done
    assert keeper.refresh(tenant, account_id) is RefreshResult.SKIPPED
    with session_scope(sqlite_engine) as session:
        request_refresh(session, session.get(Account, account_id), utcnow())
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED
    assert len(pds.calls(REFRESH)) == 1


def test_an_expired_refresh_token_falls_back_to_a_new_session(sqlite_engine, registry, keeper, pds):
    # Given an account whose refresh token has expired on the PDS
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    pds.expire_refresh_tokens()

    # When it is refreshed, I expect a new session from the app password
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED
    assert len(pds.calls(CREATE)) == 1
    assert load(sqlite_engine, account_id).status == AccountStatus.ACTIVE


def test_a_revoked_app_password_needs_reauth_and_marks_pending_targets(
    sqlite_engine, registry, keeper, pds
):
    # Given an account with a post scheduled for tomorrow, whose app password was revoked
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    _, [target_id] = add_post(
        sqlite_engine, tenant, [account_id], due_at=utcnow() + timedelta(days=1)
    )
    pds.revoke_app_password()

    # When it is refreshed
    counted = REGISTRY.get_sample_value(
        "herald_accounts_needs_reauth_total", {"platform": "bluesky", "source": "refresh"}
    )
    result = keeper.refresh(tenant, account_id)

    # I expect the account to need connecting again, with the PDS's reason, counted, and the
    # target to say why it will wait (still scheduled, nothing spent)
    assert result is RefreshResult.NEEDS_REAUTH
    assert (
        REGISTRY.get_sample_value(
            "herald_accounts_needs_reauth_total", {"platform": "bluesky", "source": "refresh"}
        )
        == (counted or 0) + 1
    )
    assert REGISTRY.get_sample_value(
        "herald_token_refreshes_total", {"platform": "bluesky", "outcome": "needs_reauth"}
    )
    account = load(sqlite_engine, account_id)
    assert account.status == AccountStatus.NEEDS_REAUTH
    assert "Invalid identifier or password" in account.status_reason
    assert account.refresh_due_at is None
    target = target_of(sqlite_engine, target_id)
    assert target.status == TargetStatus.SCHEDULED
    assert target.error_kind == "needs_reauth"
    assert "Invalid identifier or password" in target.error
    assert pds.password is None or pds.password not in account.status_reason


def test_a_platform_outage_is_retried_with_backoff_and_the_account_stays_active(
    sqlite_engine, registry, keeper, pds
):
    # Given an expiring account and a PDS answering 503
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    pds.fail_next(1, 503, {"error": "InternalServerError", "message": "Service Unavailable"})

    # When it is refreshed
    started = utcnow()
    result = keeper.refresh(tenant, account_id)

    # I expect a retry in 30 s (the first backoff), the account active and the error kept
    assert result is RefreshResult.RETRY
    account = load(sqlite_engine, account_id)
    assert account.status == AccountStatus.ACTIVE
    assert account.refresh_failures == 1
    assert "503" in account.refresh_error or "Unavailable" in account.refresh_error
    assert started + timedelta(seconds=29) <= account.refresh_due_at
    assert account.refresh_due_at <= utcnow() + timedelta(seconds=31)

    # And once due again, a refresh that succeeds clears the failure
    with session_scope(sqlite_engine) as session:
        request_refresh(session, session.get(Account, account_id), utcnow())
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED
    account = load(sqlite_engine, account_id)
    assert (account.refresh_failures, account.refresh_error) == (0, None)


def test_a_successful_refresh_releases_targets_held_for_it(sqlite_engine, registry, keeper, pds):
    # Given a target held after a 401 while the token is refreshed
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    _, [target_id] = add_post(sqlite_engine, tenant, [account_id])
    with session_scope(sqlite_engine) as session:
        target = session.get(Target, target_id)
        target.status = TargetStatus.RETRYING
        target.error_kind = "auth_refresh"
        target.due_at = utcnow() + timedelta(minutes=5)
        session.add(target)
    version = target_of(sqlite_engine, target_id).version

    # When the refresh succeeds
    assert keeper.refresh(tenant, account_id) is RefreshResult.REFRESHED

    # I expect the target due now, at a new version (any older message is stale)
    target = target_of(sqlite_engine, target_id)
    assert target.due_at <= utcnow()
    assert target.version == version + 1


def test_a_person_can_retry_a_needs_reauth_account_whose_token_works_again(
    sqlite_engine, registry, keeper
):
    # Given a Mastodon account marked needs_reauth whose token works (the instance was down)
    with running(FakeMastodon()) as mastodon:
        tenant = add_tenant(sqlite_engine)
        with session_scope(sqlite_engine) as session:
            account = Account(
                tenant_id=tenant,
                platform="mastodon",
                handle="@alice@example",
                settings={"instance_url": mastodon.url},
                credentials=registry.credentials.seal({"access_token": mastodon.token}),
                status=AccountStatus.NEEDS_REAUTH,
                status_reason="The access token is invalid",
            )
            session.add(account)
        account_id = account.id
        # A needs_reauth account is not refreshed on its own...
        assert keeper.refresh(tenant, account_id) is RefreshResult.SKIPPED

        # ...but is when a person asks
        with session_scope(sqlite_engine) as session:
            request_refresh(session, session.get(Account, account_id), utcnow())
        result = keeper.refresh(tenant, account_id)

        # I expect the token checked (verify_credentials) and the account active again
        assert result is RefreshResult.REFRESHED
        assert len(mastodon.calls("/api/v1/accounts/verify_credentials")) == 1
        account = load(sqlite_engine, account_id)
        assert (account.status, account.status_reason) == (AccountStatus.ACTIVE, None)


def test_a_revoked_mastodon_token_needs_reauth(sqlite_engine, registry, keeper):
    with running(FakeMastodon()) as mastodon:
        tenant = add_tenant(sqlite_engine)
        with session_scope(sqlite_engine) as session:
            account = Account(
                tenant_id=tenant,
                platform="mastodon",
                handle="@alice@example",
                settings={"instance_url": mastodon.url},
                credentials=registry.credentials.seal({"access_token": "revoked"}),
                refresh_due_at=utcnow(),
            )
            session.add(account)

        assert keeper.refresh(tenant, account.id) is RefreshResult.NEEDS_REAUTH
        assert load(sqlite_engine, account.id).status == AccountStatus.NEEDS_REAUTH


def test_a_refresh_is_scoped_to_its_tenant(sqlite_engine, registry, keeper, pds):
    # Given an account of one tenant, and a message naming another tenant
    tenant, other = add_tenant(sqlite_engine), add_tenant(sqlite_engine, "Other")
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)

    # I expect nothing done
    assert keeper.refresh(other, account_id) is RefreshResult.SKIPPED
    assert pds.calls(REFRESH) == []
    with session_scope(sqlite_engine) as session:
        assert session.exec(select(Account.status).where(Account.id == account_id)).one() == (
            AccountStatus.ACTIVE
        )


def test_a_reconnect_during_a_refresh_wins_over_the_refreshs_tokens(
    sqlite_engine, registry, keeper, pds
):
    # Given a refresh holding the lease on the old grant
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    assert keeper._lease(tenant, account_id, utcnow()) is not None
    leased = load(sqlite_engine, account_id)

    # When a person reconnects the account meanwhile (new credentials through the API)
    from herald_api.schemas import AccountUpdate
    from herald_api.services.accounts import update_account

    new = {"app_password": "new-app-password"}
    with session_scope(sqlite_engine) as session:
        update_account(
            session, tenant, account_id, AccountUpdate(credentials=new), platforms=registry
        )

    # I expect the account active with the person's secrets, and the refresh, finishing
    # late, to find its lease gone and drop its tokens
    account = load(sqlite_engine, account_id)
    assert (account.status, account.refresh_started_at) == (AccountStatus.ACTIVE, None)
    from herald_common.platforms.auth import Refreshed

    late = Refreshed(credentials={"app_password": "old", "accessJwt": "a", "did": "d"})
    authenticator = registry.authenticator("bluesky")
    assert keeper._store(leased, authenticator, late) is RefreshResult.SKIPPED
    assert registry.credentials_of(load(sqlite_engine, account_id)) == new


def test_a_session_the_publisher_renews_itself_keeps_the_expiry_true(sqlite_engine, registry, pds):
    # Given a Bluesky account whose stored access token has expired (the PDS says so)
    tenant = add_tenant(sqlite_engine)
    account_id = add_bluesky(sqlite_engine, registry, pds, tenant)
    pds.expire_all()
    pds.access_ttl = 7200
    old_expiry = load(sqlite_engine, account_id).token_expires_at

    # When a publish through the registry's adapter finds it refused and renews the session
    account = load(sqlite_engine, account_id)
    ref = account_ref(account, registry.credentials_of(account))
    result = registry.get("bluesky").publish(
        PublishRequest(account=ref, idempotency_key="target-1", text="Hello")
    )

    # I expect the post made, the new session stored, and the account showing its expiry
    assert result.http_status == 200
    assert len(pds.calls(REFRESH)) == 1
    stored = load(sqlite_engine, account_id)
    assert stored.token_expires_at > old_expiry + timedelta(seconds=3600)
    assert stored.token_expires_at > utcnow() + timedelta(seconds=7100)
