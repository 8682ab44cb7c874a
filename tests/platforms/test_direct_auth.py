"""Connecting Bluesky and Mastodon accounts with credentials handed in, over HTTP to fakes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from herald_common.errors import InvalidInput, NeedsAuth, RateLimited, TransientError
from herald_common.platforms.auth import Connection
from herald_common.platforms.base import AccountRef, PublishRequest
from herald_common.platforms.bluesky import BlueskyCredentials, BlueskyPlatform, BlueskySettings
from herald_common.platforms.direct_auth import (
    BlueskyAuthenticator,
    MastodonAuthenticator,
    jwt_expiry,
)
from herald_common.platforms.mastodon import (
    MastodonCredentials,
    MastodonPlatform,
    MastodonSettings,
)
from tests.platforms.servers import FakeMastodon, FakePDS, running

T0 = 1_790_000_000
PASSWORD = "abcd-efgh-ijkl-mnop"
TOKEN = "mastodon-token-4f9a1c"
CREATE = "/xrpc/com.atproto.server.createSession"
REFRESH = "/xrpc/com.atproto.server.refreshSession"


def account_of(platform: str, connection: Connection) -> AccountRef:
    return AccountRef(
        id=f"acc-{platform}",
        tenant_id="t-1",
        platform=platform,
        handle=connection.handle,
        external_id=connection.external_id,
        settings=dict(connection.settings),
        credentials=dict(connection.credentials),
    )


def with_credentials(account: AccountRef, credentials: dict[str, str]) -> AccountRef:
    return AccountRef(
        id=account.id,
        tenant_id=account.tenant_id,
        platform=account.platform,
        handle=account.handle,
        external_id=account.external_id,
        settings=account.settings,
        credentials=credentials,
    )


# -- Bluesky --------------------------------------------------------------------------------


@pytest.fixture
def pds() -> Iterator[FakePDS]:
    fake = FakePDS(password=PASSWORD)
    fake.jwt = True
    fake.clock = lambda: T0
    with running(fake) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def bluesky(client: httpx.Client) -> BlueskyAuthenticator:
    return BlueskyAuthenticator(client)


@pytest.fixture
def bsky_account(pds: FakePDS, bluesky: BlueskyAuthenticator) -> AccountRef:
    connection = bluesky.connect(
        {"handle": "alice.test", "app_password": PASSWORD, "service_url": pds.url}
    )
    return account_of("bluesky", connection)


def test_bluesky_connect_signs_in_and_keeps_the_session(pds, bluesky):
    connection = bluesky.connect(
        {"handle": "@alice.test", "app_password": PASSWORD, "service_url": f"{pds.url}/"}
    )

    assert (connection.handle, connection.external_id) == ("alice.test", "did:plc:alice")
    assert connection.settings == {"service_url": pds.url}
    assert set(connection.credentials) == {"app_password", "accessJwt", "refreshJwt", "did"}
    assert connection.credentials["app_password"] == PASSWORD
    BlueskySettings.model_validate(connection.settings)
    BlueskyCredentials.model_validate(connection.credentials)
    # The access token's `exp` claim is the expiry
    assert connection.expires_at == T0 + 7200
    assert bluesky.expires_at(connection.credentials) == T0 + 7200
    assert bluesky.flow == "direct"
    [call] = pds.calls(CREATE)
    assert call.json() == {"identifier": "alice.test", "password": PASSWORD}


def test_bluesky_connect_refuses_missing_or_wrong_credentials(pds, bluesky):
    with pytest.raises(InvalidInput) as e:
        bluesky.connect({"service_url": pds.url})
    assert [f.field for f in e.value.errors] == ["handle", "app_password"]

    with pytest.raises(InvalidInput, match="Invalid identifier or password") as e:
        bluesky.connect(
            {"handle": "alice.test", "app_password": "wrong-pass-1234", "service_url": pds.url}
        )
    assert e.value.errors[0].field == "app_password"
    assert "wrong-pass-1234" not in str(e.value)


def test_bluesky_refresh_rotates_the_refresh_token(pds, bluesky, bsky_account):
    refreshed = bluesky.refresh(bsky_account)

    old, new = bsky_account.credentials, refreshed.credentials
    assert new["refreshJwt"] != old["refreshJwt"] and new["accessJwt"] != old["accessJwt"]
    assert new["app_password"] == PASSWORD and new["did"] == "did:plc:alice"
    assert refreshed.expires_at == T0 + 7200
    BlueskyCredentials.model_validate(new)
    assert len(pds.calls(REFRESH)) == 1 and len(pds.calls(CREATE)) == 1  # the connect's
    # The spent refresh token is refused by the PDS; the new one works
    assert pds.calls(REFRESH)[0].headers["authorization"] == f"Bearer {old['refreshJwt']}"
    again = bluesky.refresh(with_credentials(bsky_account, dict(new)))
    assert again.credentials["refreshJwt"] != new["refreshJwt"]
    assert len(pds.calls(CREATE)) == 1


def test_a_spent_or_expired_refresh_token_falls_back_to_the_app_password(
    pds, bluesky, bsky_account
):
    bluesky.refresh(bsky_account)  # rotates: the stored refresh token is now spent

    refreshed = bluesky.refresh(bsky_account)

    assert len(pds.calls(CREATE)) == 2
    assert refreshed.credentials["accessJwt"] in pds.access
    pds.expire_refresh_tokens()
    assert bluesky.refresh(with_credentials(bsky_account, dict(refreshed.credentials)))
    assert len(pds.calls(CREATE)) == 3


def test_the_refreshed_session_publishes(pds, bluesky, bsky_account, client):
    refreshed = bluesky.refresh(bsky_account)
    acc = with_credentials(bsky_account, dict(refreshed.credentials))

    result = BlueskyPlatform(client).publish(
        PublishRequest(account=acc, idempotency_key="k-1", text="Hello, sky")
    )

    assert result.platform_post_id.startswith("at://did:plc:alice/")


def test_a_revoked_app_password_needs_a_new_login(pds, bluesky, bsky_account):
    pds.revoke_app_password()

    with pytest.raises(NeedsAuth, match="Invalid identifier or password") as e:
        bluesky.refresh(bsky_account)

    message = str(e.value)
    assert "create a new one and connect the account again" in message
    for secret in bsky_account.credentials.values():
        if secret != "did:plc:alice":
            assert secret not in message
    # refreshSession said "revoked", createSession said no
    assert len(pds.calls(REFRESH)) == 1 and len(pds.calls(CREATE)) == 2


def test_a_taken_down_account_needs_a_person(pds, bluesky, bsky_account):
    pds.takedown = True

    with pytest.raises(NeedsAuth, match="AccountTakedown"):
        bluesky.refresh(bsky_account)


def test_bluesky_outages_and_rate_limits_are_transient(pds, bluesky, bsky_account):
    pds.fail_next(1, 502, {"error": "InternalServerError"}, path=REFRESH)
    with pytest.raises(TransientError):
        bluesky.refresh(bsky_account)
    assert pds.calls(CREATE) and len(pds.calls(CREATE)) == 1  # no fallback on a 5xx

    pds.expire_refresh_tokens()
    pds.fail_next(
        1,
        429,
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        {"RateLimit-Reset": str(T0 + 60)},
        path=CREATE,
    )
    with pytest.raises(RateLimited) as e:
        bluesky.refresh(bsky_account)
    assert e.value.retry_after is not None


def test_an_unreachable_pds_is_transient(bluesky):
    with pytest.raises(TransientError, match="could not be reached"):
        bluesky.connect(
            {"handle": "a.test", "app_password": PASSWORD, "service_url": "http://127.0.0.1:1"}
        )


def test_jwt_expiry_reads_the_exp_claim_without_verifying():
    payload = base64.urlsafe_b64encode(json.dumps({"exp": 1234}).encode()).rstrip(b"=").decode()
    assert jwt_expiry(f"eyJhbGciOiJub25lIn0.{payload}.sig") == 1234
    no_exp = base64.urlsafe_b64encode(b'{"sub":"x"}').rstrip(b"=").decode()
    assert jwt_expiry(f"a.{no_exp}.b") is None
    assert jwt_expiry("access-1") is None
    assert jwt_expiry("a.!!!.b") is None
    assert jwt_expiry(None) is None


# -- Mastodon -------------------------------------------------------------------------------


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with running(FakeMastodon(token=TOKEN)) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def masto_auth(client: httpx.Client) -> MastodonAuthenticator:
    return MastodonAuthenticator(client)


@pytest.fixture
def masto_account(mastodon: FakeMastodon, masto_auth: MastodonAuthenticator) -> AccountRef:
    connection = masto_auth.connect({"instance_url": mastodon.url, "access_token": TOKEN})
    return account_of("mastodon", connection)


def test_mastodon_connect_verifies_the_token_and_builds_the_handle(mastodon, masto_auth):
    connection = masto_auth.connect({"instance_url": f"{mastodon.url}/", "access_token": TOKEN})

    host = mastodon.url.removeprefix("http://")
    assert connection.handle == f"@alice@{host}"
    assert connection.external_id == "109"
    assert connection.settings == {"instance_url": mastodon.url}
    assert connection.credentials == {"access_token": TOKEN}
    assert connection.expires_at is None
    MastodonSettings.model_validate(connection.settings)
    MastodonCredentials.model_validate(connection.credentials)
    [call] = mastodon.calls("/api/v1/accounts/verify_credentials")
    assert call.headers["authorization"] == f"Bearer {TOKEN}"


def test_mastodon_connect_refuses_a_bad_token(mastodon, masto_auth):
    with pytest.raises(InvalidInput, match="The access token is invalid") as e:
        masto_auth.connect({"instance_url": mastodon.url, "access_token": "not-the-token"})
    assert e.value.errors[0].field == "access_token"
    assert "not-the-token" not in str(e.value)

    with pytest.raises(InvalidInput) as e:
        masto_auth.connect({"instance_url": "", "access_token": TOKEN})
    assert e.value.errors[0].field == "instance_url"


def test_the_connected_mastodon_account_publishes(mastodon, masto_account, client):
    result = MastodonPlatform(client).publish(
        PublishRequest(account=masto_account, idempotency_key="k-1", text="Hello, fediverse")
    )

    assert result.platform_post_id in mastodon.statuses


def test_mastodon_refresh_checks_the_token_and_keeps_it(mastodon, masto_auth, masto_account):
    refreshed = masto_auth.refresh(masto_account)

    assert refreshed.credentials == masto_account.credentials and refreshed.expires_at is None
    assert len(mastodon.calls("/api/v1/accounts/verify_credentials")) == 2
    assert masto_auth.expires_at(masto_account.credentials) is None


def test_a_revoked_mastodon_token_needs_a_new_login(mastodon, masto_auth, masto_account):
    mastodon.revoke()

    with pytest.raises(NeedsAuth, match="The access token was revoked") as e:
        masto_auth.refresh(masto_account)

    assert "connect the account again" in str(e.value) and TOKEN not in str(e.value)


def test_a_disabled_mastodon_login_needs_a_person(mastodon, masto_auth, masto_account):
    mastodon.login_disabled = True

    with pytest.raises(NeedsAuth, match="Your login is currently disabled"):
        masto_auth.refresh(masto_account)


def test_mastodon_outages_and_rate_limits_are_transient(mastodon, masto_auth, masto_account):
    mastodon.fail_next(1, 503, {"error": "Service Unavailable"})
    with pytest.raises(TransientError):
        masto_auth.refresh(masto_account)

    reset = datetime.fromtimestamp(T0, UTC).isoformat()
    mastodon.fail_next(1, 429, {"error": "Too many requests"}, {"X-RateLimit-Reset": reset})
    with pytest.raises(RateLimited):
        masto_auth.refresh(masto_account)

    gone = with_credentials(masto_account, dict(masto_account.credentials))
    unreachable = AccountRef(
        id=gone.id,
        tenant_id=gone.tenant_id,
        platform="mastodon",
        handle=gone.handle,
        settings={"instance_url": "http://127.0.0.1:1"},
        credentials=gone.credentials,
    )
    with pytest.raises(TransientError, match="could not be reached"):
        masto_auth.refresh(unreachable)
