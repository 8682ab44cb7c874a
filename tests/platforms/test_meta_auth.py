"""Connecting Facebook Pages, Instagram and Threads accounts, over HTTP to local Meta fakes.

The fakes answer the login endpoints as Meta documents them (see tests/platforms/fake_meta.py):
single-use codes bound to their redirect_uri, short → long-lived tokens, /me/accounts, Threads'
th_exchange_token / th_refresh_token, and deauthorized or expired tokens as Graph errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from herald_common.errors import (
    NeedsAuth,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
)
from herald_common.platforms.auth import Connection, OAuthClient
from herald_common.platforms.base import AccountRef, PublishRequest
from herald_common.platforms.facebook import (
    FacebookCredentials,
    FacebookPlatform,
    FacebookSettings,
)
from herald_common.platforms.instagram import (
    InstagramCredentials,
    InstagramPlatform,
    InstagramSettings,
)
from herald_common.platforms.meta_auth import (
    FacebookAuthenticator,
    InstagramAuthenticator,
    ThreadsAuthenticator,
)
from herald_common.platforms.threads import ThreadsCredentials, ThreadsPlatform, ThreadsSettings
from tests.platforms.fake_meta import (
    APP_ID,
    APP_SECRET,
    LONG_LIVED,
    FakeFacebook,
    FakeInstagram,
    FakeThreads,
)
from tests.platforms.servers import running

REDIRECT = "https://herald.example/v1/accounts/connect/facebook/callback"
T0 = 1_790_000_000.0
DAY = 86400.0


class Clock:
    """A clock the fakes and the authenticators share, moved by the tests."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def facebook(clock: Clock) -> Iterator[FakeFacebook]:
    with running(FakeFacebook(clock=clock)) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def instagram(clock: Clock) -> Iterator[FakeInstagram]:
    with running(FakeInstagram(clock=clock)) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def threads(clock: Clock) -> Iterator[FakeThreads]:
    with running(FakeThreads(clock=clock)) as fake:
        yield fake  # type: ignore[misc]


def fb_auth(
    client: httpx.Client, fake: FakeFacebook, clock: Clock, oauth: OAuthClient | None = None
) -> FacebookAuthenticator:
    return FacebookAuthenticator(
        client,
        oauth=oauth or OAuthClient(APP_ID, APP_SECRET),
        api_url=fake.url,
        api_version="v25.0",
        dialog_url="https://www.facebook.com",
        clock=clock,
    )


def ig_auth(
    client: httpx.Client, fake: FakeInstagram, clock: Clock, oauth: OAuthClient | None = None
) -> InstagramAuthenticator:
    return InstagramAuthenticator(
        client,
        oauth=oauth or OAuthClient(APP_ID, APP_SECRET),
        api_url=fake.url,
        api_version="v25.0",
        dialog_url="https://www.facebook.com",
        clock=clock,
    )


def th_auth(
    client: httpx.Client, fake: FakeThreads, clock: Clock, oauth: OAuthClient | None = None
) -> ThreadsAuthenticator:
    return ThreadsAuthenticator(
        client,
        oauth=oauth or OAuthClient(APP_ID, APP_SECRET),
        api_url=fake.url,
        api_version="v1.0",
        clock=clock,
    )


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


def with_credentials(account: AccountRef, credentials: dict[str, object]) -> AccountRef:
    return AccountRef(
        id=account.id,
        tenant_id=account.tenant_id,
        platform=account.platform,
        handle=account.handle,
        external_id=account.external_id,
        settings=account.settings,
        credentials=credentials,  # type: ignore[arg-type]
    )


def request(account: AccountRef, text: str = "Hello from Herald", **media: str) -> PublishRequest:
    items = ({"url": media["image"], "kind": "image"},) if media else ()
    return PublishRequest(account=account, idempotency_key="k-1", text=text, media=items)


def query(url: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_no_secrets(exc: BaseException, *secrets: str) -> None:
    text = str(exc)
    for secret in (APP_SECRET, *secrets):
        assert secret not in text


# -- Facebook: authorize and exchange -------------------------------------------------------


def test_facebook_authorize_url_is_the_login_dialog_with_page_scopes(client, facebook, clock):
    auth = fb_auth(client, facebook, clock)

    url = auth.authorize_url(state="st-1", redirect_uri=REDIRECT)

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "www.facebook.com",
        "/v25.0/dialog/oauth",
    )
    assert query(url) == {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "state": "st-1",
        "response_type": "code",
        "scope": "pages_show_list,pages_read_engagement,pages_manage_posts",
    }
    assert auth.flow == "oauth" and auth.uses_pkce is False and auth.configured


def test_without_an_app_facebook_is_not_configured(client, facebook, clock):
    for oauth in (None, OAuthClient(APP_ID, None)):
        auth = FacebookAuthenticator(
            client, oauth=oauth, api_url=facebook.url, api_version="v25.0", dialog_url="x"
        )
        assert not auth.configured
        with pytest.raises(PermanentError, match="FACEBOOK_APP_ID and FACEBOOK_APP_SECRET"):
            auth.authorize_url(state="s", redirect_uri=REDIRECT)


def test_facebook_exchange_connects_every_page_with_a_page_token(client, facebook, clock):
    # Given a person who manages four Pages (one without a task that grants a token), listed
    # two per answer
    facebook.add_page(facebook.page_id, "Bakery")
    facebook.add_page("2233445566", "Bakery Events")
    facebook.add_page("3344556677", "Read-only Page", tasks=())
    facebook.add_page("4455667788", "Bakery Jobs")
    facebook.accounts_page_size = 2
    code = facebook.authorize(redirect_uri=REDIRECT)

    # When the code the dialog sent back is exchanged
    connections = fb_auth(client, facebook, clock).exchange(code=code, redirect_uri=REDIRECT)

    # Then each Page with a token is one account, its Page token stored without expiry
    assert [(c.handle, c.external_id) for c in connections] == [
        ("Bakery", facebook.page_id),
        ("Bakery Events", "2233445566"),
        ("Bakery Jobs", "4455667788"),
    ]
    for connection in connections:
        assert connection.settings == {"page_id": connection.external_id}
        assert connection.expires_at is None
        FacebookSettings.model_validate(connection.settings)
        FacebookCredentials.model_validate(connection.credentials)
        info = facebook.token_info[connection.credentials["access_token"]]
        assert (info["kind"], info["page_id"], info["expires_at"]) == (
            "page",
            connection.external_id,
            None,
        )
    # And the code was exchanged once, then made long-lived, then the Pages read in two pages
    assert facebook.oauth_calls == {"code": 1, "fb_exchange_token": 1, "me_accounts": 2}
    exchange = facebook.calls("/v25.0/oauth/access_token")[0]
    assert {k: v[-1] for k, v in exchange.query.items()} == {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "client_secret": APP_SECRET,
        "code": code,
    }
    listing = facebook.calls("/v25.0/me/accounts")
    assert all("access_token" not in r.query for r in listing)
    assert listing[1].query["after"] and listing[1].headers["authorization"].startswith("Bearer ")


def test_a_connected_page_token_publishes(client, facebook, clock):
    # Given a Page connected through the login flow
    facebook.add_page(facebook.page_id, "Bakery")
    code = facebook.authorize(redirect_uri=REDIRECT)
    [connection] = fb_auth(client, facebook, clock).exchange(code=code, redirect_uri=REDIRECT)

    # When the adapter publishes with what was stored
    result = FacebookPlatform(client, api_url=facebook.url, clock=clock).publish(
        request(account_of("facebook", connection))
    )

    # Then the Page token is accepted
    assert result.platform_post_id in facebook.posts


def test_a_code_is_single_use(client, facebook, clock):
    facebook.add_page(facebook.page_id, "Bakery")
    auth = fb_auth(client, facebook, clock)
    code = facebook.authorize(redirect_uri=REDIRECT)
    auth.exchange(code=code, redirect_uri=REDIRECT)

    with pytest.raises(NeedsAuth, match="invalid or was already used; start connecting again") as e:
        auth.exchange(code=code, redirect_uri=REDIRECT)

    assert "36009" in str(e.value)
    assert_no_secrets(e.value, code)


@pytest.mark.parametrize(
    ("how", "subcode"), [("other_redirect", "36008"), ("expired", "36007"), ("unknown", "100")]
)
def test_a_code_for_another_redirect_expired_or_unknown_needs_a_new_login(
    client, facebook, clock, how, subcode
):
    facebook.add_page(facebook.page_id, "Bakery")
    code = facebook.authorize(redirect_uri=REDIRECT)
    redirect = REDIRECT
    if how == "other_redirect":
        redirect = "https://elsewhere.example/callback"
    elif how == "expired":
        clock.advance(601)
    else:
        code = "AQDnot-a-code"

    with pytest.raises(NeedsAuth, match="start connecting again") as e:
        fb_auth(client, facebook, clock).exchange(code=code, redirect_uri=redirect)

    assert subcode in str(e.value)
    assert_no_secrets(e.value, code)
    assert facebook.oauth_calls["fb_exchange_token"] == 0


@pytest.mark.parametrize(
    ("oauth", "named"),
    [
        (OAuthClient(APP_ID, "wrong-secret-123"), "Error validating client secret"),
        (OAuthClient("999", APP_SECRET), "Invalid application ID"),
    ],
)
def test_wrong_app_credentials_are_permanent_and_name_the_settings(
    client, facebook, clock, oauth, named
):
    code = facebook.authorize(redirect_uri=REDIRECT)

    with pytest.raises(PermanentError) as e:
        fb_auth(client, facebook, clock, oauth).exchange(code=code, redirect_uri=REDIRECT)

    message = str(e.value)
    assert "FACEBOOK_APP_ID and FACEBOOK_APP_SECRET" in message and named in message
    assert_no_secrets(e.value, "wrong-secret-123", code)


def test_a_login_without_pages_connects_nothing(client, facebook, clock):
    code = facebook.authorize(redirect_uri=REDIRECT)

    with pytest.raises(PermanentError, match="no Facebook Page was granted"):
        fb_auth(client, facebook, clock).exchange(code=code, redirect_uri=REDIRECT)


# -- Facebook: refresh ----------------------------------------------------------------------


@pytest.fixture
def page_account(client, facebook, clock) -> AccountRef:
    facebook.add_page(facebook.page_id, "Bakery")
    code = facebook.authorize(redirect_uri=REDIRECT)
    [connection] = fb_auth(client, facebook, clock).exchange(code=code, redirect_uri=REDIRECT)
    return account_of("facebook", connection)


def test_refreshing_a_page_token_checks_it_and_keeps_it(client, facebook, clock, page_account):
    clock.advance(200 * DAY)

    refreshed = fb_auth(client, facebook, clock).refresh(page_account)

    assert refreshed.credentials == page_account.credentials and refreshed.expires_at is None
    [check] = facebook.calls("/v25.0/me")
    assert check.headers["authorization"] == f"Bearer {page_account.credentials['access_token']}"
    assert facebook.oauth_calls["fb_exchange_token"] == 1  # only the connect's


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("app_removed", "removed Herald's app"),
        ("password_changed", "changed their password"),
    ],
)
def test_a_deauthorized_page_needs_a_new_login(
    client, facebook, clock, page_account, reason, words
):
    facebook.deauthorize(reason=reason)

    with pytest.raises(NeedsAuth, match=words) as e:
        fb_auth(client, facebook, clock).refresh(page_account)

    assert "connect the account again" in str(e.value) and "Meta said:" in str(e.value)
    assert_no_secrets(e.value, page_account.credentials["access_token"])


def test_a_malformed_token_quoted_by_meta_is_not_repeated(client, facebook, clock, page_account):
    facebook.echo_tokens = True
    bogus = with_credentials(page_account, {"access_token": "EAAGbogus-token-123"})

    with pytest.raises(NeedsAuth) as e:
        fb_auth(client, facebook, clock).refresh(bogus)

    assert "Malformed access token [redacted]" in str(e.value)
    assert_no_secrets(e.value, "EAAGbogus-token-123")


def test_a_stored_user_token_is_exchanged_again_while_valid(client, facebook, clock, page_account):
    # Given a Page account that stores a long-lived User token with its expiry
    user_token = facebook.issue_token(facebook.default_user, "long", lifetime=LONG_LIVED)
    expiring = with_credentials(
        page_account, {"access_token": user_token, "expires_at": T0 + LONG_LIVED}
    )
    clock.advance(50 * DAY)

    # When it is refreshed
    refreshed = fb_auth(client, facebook, clock).refresh(expiring)

    # Then it holds a new long-lived token, valid 60 days from now
    new = refreshed.credentials["access_token"]
    assert new != user_token and facebook.token_state(new) == "valid"
    assert refreshed.expires_at == refreshed.credentials["expires_at"] == clock() + LONG_LIVED
    FacebookCredentials.model_validate(refreshed.credentials)


def test_an_expired_user_token_is_not_sent(client, facebook, clock, page_account):
    expired = with_credentials(page_account, {"access_token": "EAAGold", "expires_at": T0 - 1})
    before = len(facebook.requests)

    with pytest.raises(NeedsAuth, match=r"expired on .*connect the account again"):
        fb_auth(client, facebook, clock).refresh(expired)

    assert len(facebook.requests) == before


def test_server_errors_and_throttling_are_transient(client, facebook, clock, page_account):
    auth = fb_auth(client, facebook, clock)
    facebook.fail_next(1, 503, {"error": {"message": "Service unavailable", "code": 2}})
    with pytest.raises(TransientError):
        auth.refresh(page_account)

    facebook.throttle(1, code=4)
    with pytest.raises(RateLimited) as e:
        auth.refresh(page_account)
    assert e.value.retry_after is not None

    facebook.fail_next(1, 429, None, {"Retry-After": "30"})
    with pytest.raises(TransientError) as e:
        auth.refresh(page_account)
    assert e.value.retry_after == 30


def test_an_unreachable_graph_is_transient(client, clock, page_account):
    auth = FacebookAuthenticator(
        client,
        oauth=OAuthClient(APP_ID, APP_SECRET),
        api_url="http://127.0.0.1:1",
        api_version="v25.0",
        dialog_url="https://www.facebook.com",
        clock=clock,
    )
    with pytest.raises(TransientError, match="could not be reached") as e:
        auth.exchange(code="AQDcode", redirect_uri=REDIRECT)
    assert e.value.__cause__ is None  # the URL carried the secret and the code
    with pytest.raises(TransientError):
        auth.refresh(page_account)


# -- Instagram ------------------------------------------------------------------------------


def test_instagram_authorize_url_asks_for_instagram_and_page_scopes(client, instagram, clock):
    url = ig_auth(client, instagram, clock).authorize_url(state="st-2", redirect_uri=REDIRECT)

    assert urlsplit(url).path == "/v25.0/dialog/oauth"
    assert query(url)["scope"] == (
        "instagram_basic,instagram_content_publish,pages_show_list,pages_read_engagement"
    )


def test_instagram_exchange_connects_the_pages_instagram_accounts(client, instagram, clock):
    # Given three Pages, two linked to an Instagram professional account
    instagram.add_page("1122334455", "Bakery", instagram=(instagram.owner_id, "bakery.ig"))
    instagram.add_page("2233445566", "No Instagram")
    instagram.add_page("3344556677", "Cafe", instagram=("17841400000000002", "cafe.ig"))
    code = instagram.authorize(redirect_uri=REDIRECT)

    connections = ig_auth(client, instagram, clock).exchange(code=code, redirect_uri=REDIRECT)

    assert [(c.handle, c.external_id) for c in connections] == [
        ("bakery.ig", instagram.owner_id),
        ("cafe.ig", "17841400000000002"),
    ]
    for connection in connections:
        assert connection.settings == {"ig_user_id": connection.external_id}
        assert connection.expires_at == connection.credentials["expires_at"] == T0 + LONG_LIVED
        InstagramSettings.model_validate(connection.settings)
        InstagramCredentials.model_validate(connection.credentials)
        assert facebook_kind(instagram, connection) == "long"
    listing = instagram.calls("/v25.0/me/accounts")[0]
    assert "instagram_business_account{id,username}" in listing.query["fields"][0]


def facebook_kind(fake: FakeInstagram, connection: Connection) -> str:
    return fake.token_info[connection.credentials["access_token"]]["kind"]


def test_the_instagram_user_token_publishes(client, instagram, clock):
    instagram.add_page("1122334455", "Bakery", instagram=(instagram.owner_id, "bakery.ig"))
    code = instagram.authorize(redirect_uri=REDIRECT)
    [connection] = ig_auth(client, instagram, clock).exchange(code=code, redirect_uri=REDIRECT)
    platform = InstagramPlatform(
        client, api_url=instagram.url, poll_interval=0, sleep=lambda s: None, clock=clock
    )

    result = platform.publish(
        request(account_of("instagram", connection), image="https://cdn.example.org/a.jpg")
    )

    assert result.platform_post_id in instagram.media


def test_no_instagram_account_on_any_page_is_permanent(client, instagram, clock):
    instagram.add_page("2233445566", "No Instagram")
    code = instagram.authorize(redirect_uri=REDIRECT)

    with pytest.raises(PermanentError, match="Instagram professional account linked"):
        ig_auth(client, instagram, clock).exchange(code=code, redirect_uri=REDIRECT)


@pytest.fixture
def ig_account(client, instagram, clock) -> AccountRef:
    instagram.add_page("1122334455", "Bakery", instagram=(instagram.owner_id, "bakery.ig"))
    code = instagram.authorize(redirect_uri=REDIRECT)
    [connection] = ig_auth(client, instagram, clock).exchange(code=code, redirect_uri=REDIRECT)
    return account_of("instagram", connection)


def test_instagram_refresh_exchanges_the_token_for_a_later_expiry(
    client, instagram, clock, ig_account
):
    clock.advance(45 * DAY)

    refreshed = ig_auth(client, instagram, clock).refresh(ig_account)

    assert refreshed.credentials["access_token"] != ig_account.credentials["access_token"]
    assert refreshed.expires_at == refreshed.credentials["expires_at"] == clock() + LONG_LIVED
    assert instagram.oauth_calls["fb_exchange_token"] == 2
    InstagramCredentials.model_validate(refreshed.credentials)
    # And the new token works where the old one is about to stop
    clock.advance(20 * DAY)
    assert instagram.token_state(str(ig_account.credentials["access_token"])) == "expired"
    assert instagram.token_state(refreshed.credentials["access_token"]) == "valid"


def test_an_expired_instagram_token_needs_a_new_login(client, instagram, clock, ig_account):
    clock.advance(61 * DAY)

    with pytest.raises(NeedsAuth, match="Meta cannot renew an expired token"):
        ig_auth(client, instagram, clock).refresh(ig_account)
    assert instagram.oauth_calls["fb_exchange_token"] == 1


def test_a_deauthorized_instagram_account_needs_a_new_login(client, instagram, clock, ig_account):
    instagram.deauthorize()

    with pytest.raises(NeedsAuth, match="removed Herald's app") as e:
        ig_auth(client, instagram, clock).refresh(ig_account)
    assert_no_secrets(e.value, str(ig_account.credentials["access_token"]))


# -- Threads --------------------------------------------------------------------------------


def test_threads_authorize_url_is_the_authorization_window(client, threads, clock):
    auth = ThreadsAuthenticator(client, oauth=OAuthClient(APP_ID, APP_SECRET))

    url = auth.authorize_url(state="st-3", redirect_uri=REDIRECT)

    assert url.startswith("https://threads.net/oauth/authorize?")
    assert query(url) == {
        "client_id": APP_ID,
        "redirect_uri": REDIRECT,
        "scope": "threads_basic,threads_content_publish",
        "response_type": "code",
        "state": "st-3",
    }


def test_threads_exchange_makes_a_long_lived_token(client, threads, clock):
    code = threads.authorize(redirect_uri=REDIRECT)

    # When the code comes back with the "#_" Threads appends
    [connection] = th_auth(client, threads, clock).exchange(code=f"{code}#_", redirect_uri=REDIRECT)

    assert (connection.handle, connection.external_id) == ("alice", threads.owner_id)
    assert connection.settings == {"threads_user_id": threads.owner_id}
    assert connection.expires_at == connection.credentials["expires_at"] == T0 + LONG_LIVED
    ThreadsSettings.model_validate(connection.settings)
    ThreadsCredentials.model_validate(connection.credentials)
    assert threads.token_info[connection.credentials["access_token"]]["kind"] == "long"
    assert threads.oauth_calls == {"code": 1, "th_exchange_token": 1}
    [exchange] = threads.calls("/oauth/access_token", "POST")
    assert {k: v[-1] for k, v in exchange.form().items()} == {
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
    }


@pytest.fixture
def th_account(client, threads, clock) -> AccountRef:
    code = threads.authorize(redirect_uri=REDIRECT)
    [connection] = th_auth(client, threads, clock).exchange(code=code, redirect_uri=REDIRECT)
    return account_of("threads", connection)


def publish_thread(client: httpx.Client, threads: FakeThreads, clock: Clock, acc: AccountRef):
    platform = ThreadsPlatform(client, api_url=threads.url, poll_interval=0, clock=clock)
    return platform.publish(request(acc, "Hello, Threads"))


def test_the_threads_token_publishes(client, threads, clock, th_account):
    result = publish_thread(client, threads, clock, th_account)

    assert result.platform_post_id in threads.media


def test_a_threads_token_under_a_day_old_is_checked_not_refreshed(
    client, threads, clock, th_account
):
    clock.advance(3600)

    refreshed = th_auth(client, threads, clock).refresh(th_account)

    assert refreshed.credentials == th_account.credentials
    assert refreshed.expires_at == T0 + LONG_LIVED
    assert threads.calls("/refresh_access_token") == [] and len(threads.calls("/v1.0/me")) == 2


def test_a_refusal_of_a_young_token_of_unknown_age_keeps_it(client, threads, clock, th_account):
    # Given a token stored without its expiry, and Threads refusing to refresh it (under 24 h)
    unknown_age = with_credentials(
        th_account, {"access_token": th_account.credentials["access_token"]}
    )

    refreshed = th_auth(client, threads, clock).refresh(unknown_age)

    # Then the refusal is what the docs imply (too young), not an error: the token is kept
    assert refreshed.credentials == unknown_age.credentials and refreshed.expires_at is None
    assert len(threads.calls("/refresh_access_token")) == 1
    assert threads.oauth_calls["th_refresh_token"] == 0


def test_a_threads_token_over_a_day_old_is_refreshed(client, threads, clock, th_account):
    clock.advance(30 * DAY)

    refreshed = th_auth(client, threads, clock).refresh(th_account)

    assert refreshed.credentials["access_token"] != th_account.credentials["access_token"]
    assert refreshed.expires_at == refreshed.credentials["expires_at"] == clock() + LONG_LIVED
    assert threads.oauth_calls["th_refresh_token"] == 1
    [call] = threads.calls("/refresh_access_token")
    assert call.query["grant_type"] == ["th_refresh_token"]
    ThreadsCredentials.model_validate(refreshed.credentials)
    # And the refreshed token publishes after the old one would have expired
    clock.advance(40 * DAY)
    result = publish_thread(
        client, threads, clock, with_credentials(th_account, dict(refreshed.credentials))
    )
    assert result.platform_post_id in threads.media


def test_an_expired_threads_token_cannot_be_refreshed(client, threads, clock, th_account):
    clock.advance(61 * DAY)

    with pytest.raises(NeedsAuth, match="expired on"):
        th_auth(client, threads, clock).refresh(th_account)
    assert threads.calls("/refresh_access_token") == []


def test_a_deauthorized_threads_profile_needs_a_new_login(client, threads, clock, th_account):
    clock.advance(2 * DAY)
    threads.deauthorize()

    with pytest.raises(NeedsAuth, match="removed Herald's app") as e:
        th_auth(client, threads, clock).refresh(th_account)
    assert_no_secrets(e.value, str(th_account.credentials["access_token"]))


def test_a_threads_refresh_during_an_outage_is_transient(client, threads, clock, th_account):
    clock.advance(2 * DAY)
    threads.fail_next(1, 500, {"error": {"message": "An unexpected error", "code": 2}})

    with pytest.raises(TransientError):
        th_auth(client, threads, clock).refresh(th_account)


def test_threads_wrong_secret_and_reused_code(client, threads, clock):
    code = threads.authorize(redirect_uri=REDIRECT)
    wrong = th_auth(client, threads, clock, OAuthClient(APP_ID, "not-the-secret"))
    with pytest.raises(PermanentError, match="THREADS_APP_ID and THREADS_APP_SECRET") as e:
        wrong.exchange(code=code, redirect_uri=REDIRECT)
    assert_no_secrets(e.value, "not-the-secret", code)

    auth = th_auth(client, threads, clock)
    auth.exchange(code=code, redirect_uri=REDIRECT)
    with pytest.raises(NeedsAuth, match="already used") as e:
        auth.exchange(code=code, redirect_uri=REDIRECT)
    assert_no_secrets(e.value, code)


def test_every_error_is_a_platform_error_with_its_platform(client, threads, clock):
    with pytest.raises(PlatformError, match=r"^threads: "):
        th_auth(client, threads, clock).exchange(code="nope", redirect_uri=REDIRECT)
