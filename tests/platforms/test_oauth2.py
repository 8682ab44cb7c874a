"""The X, LinkedIn and TikTok Authenticators against local OAuth 2.0 servers, over real HTTP.

Each fake (FakeX, FakeLinkedIn, FakeTikTok) serves an OAuthAuthority at the platform's paths;
the tokens it issues are the ones the fake's API accepts.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from herald_common.errors import NeedsAuth, PermanentError, PlatformError, TransientError
from herald_common.platforms.auth import OAuthClient, pkce_pair
from herald_common.platforms.base import AccountRef
from herald_common.platforms.linkedin import LinkedInCredentials, LinkedInSettings
from herald_common.platforms.oauth2 import (
    LINKEDIN_SCOPES,
    TIKTOK_SCOPES,
    X_SCOPES,
    LinkedInAuthenticator,
    OAuth2Client,
    TikTokAuthenticator,
    XAuthenticator,
    authorization_url,
)
from herald_common.platforms.tiktok import TikTokCredentials, TikTokSettings
from herald_common.platforms.x import XCredentials, XSettings
from tests.platforms.fake_linkedin import FakeLinkedIn
from tests.platforms.fake_oauth import (
    RFC6749,
    TikTokDialect,
    linkedin_authority,
    redirect_params,
    tiktok_authority,
    x_authority,
)
from tests.platforms.fake_tiktok import FakeTikTok
from tests.platforms.fake_x import USER, FakeX
from tests.platforms.servers import running

CALLBACK = "https://herald.test/v1/accounts/connect/{}/callback"
X_SECRET = "x-secret-Zq8mW2pLr5"
LINKEDIN_SECRET = "li-secret-Hn4vB7tQx1"
TIKTOK_SECRET = "tt-secret-Ke9sD3fGj6"
NOW = 1_800_000_000.0


class Clock:
    """A clock the test moves; the authority and the authenticator share it."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def params_of(url: str) -> dict[str, str]:
    query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(v) == 1 for v in query.values()), query
    return {k: v[0] for k, v in query.items()}


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def approve(client: httpx.Client, url: str, redirect_uri: str) -> dict[str, str]:
    """The user's browser at the authorization endpoint: the parameters it is sent back with."""
    response = client.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return redirect_params(location)


def assert_clean(exc: BaseException, *secrets: str | None) -> None:
    """No secret Herald holds appears in the error's message."""
    text = str(exc)
    for secret in secrets:
        if secret:
            assert secret not in text, f"{secret!r} leaked into {text!r}"


def account(platform: str, credentials: dict[str, Any]) -> AccountRef:
    return AccountRef(
        id="acc-1",
        tenant_id="t-1",
        platform=platform,
        handle="alice",
        credentials=credentials,
    )


def refused_port() -> str:
    """A local URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- X -------------------------------------------------------------------------------------------


class XSetup:
    def __init__(self, fake: FakeX, client: httpx.Client, *, dialect: Any = None) -> None:
        self.fake = fake
        self.client = client
        self.clock = Clock()
        self.redirect_uri = CALLBACK.format("x")
        self.authority = x_authority(fake, dialect=dialect, clock=self.clock)
        self.authority.register_client(
            "x-client", X_SECRET, [self.redirect_uri], auth_method="basic"
        )
        self.auth = self.authenticator()

    def authenticator(self, secret: str | None = X_SECRET, api_url: str | None = None):
        return XAuthenticator(
            self.client,
            oauth=OAuthClient("x-client", secret),
            api_url=api_url or self.fake.url,
            authorize_url=f"{self.fake.url}/i/oauth2/authorize",
            clock=self.clock,
        )

    def code(self, state: str = "st-x") -> tuple[str, str]:
        verifier, challenge = pkce_pair()
        url = self.auth.authorize_url(
            state=state, redirect_uri=self.redirect_uri, code_challenge=challenge
        )
        back = approve(self.client, url, self.redirect_uri)
        assert back["state"] == state
        return back["code"], verifier

    def connect(self):
        code, verifier = self.code()
        [connection] = self.auth.exchange(
            code=code, redirect_uri=self.redirect_uri, code_verifier=verifier
        )
        return connection


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    fake = FakeX()
    with running(fake):
        yield fake


@pytest.fixture
def x(fake_x: FakeX, client: httpx.Client) -> XSetup:
    return XSetup(fake_x, client)


@pytest.fixture
def x_rfc(fake_x: FakeX, client: httpx.Client) -> XSetup:
    """FakeX's authorization server answering errors strictly as RFC 6749 words them."""
    return XSetup(fake_x, client, dialect=RFC6749)


def test_x_authorize_url_carries_state_pkce_redirect_and_scopes(x: XSetup) -> None:
    verifier, challenge = pkce_pair()
    url = x.auth.authorize_url(state="s-123", redirect_uri=x.redirect_uri, code_challenge=challenge)
    assert url.startswith(f"{x.fake.url}/i/oauth2/authorize?")
    params = params_of(url)
    assert params == {
        "response_type": "code",
        "client_id": "x-client",
        "redirect_uri": x.redirect_uri,
        "scope": X_SCOPES,
        "state": "s-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    assert params["code_challenge"] == s256(verifier)
    assert "%20" in url and "+" not in url  # scopes space-separated as %20
    assert X_SECRET not in url
    assert x.auth.uses_pkce is True
    with pytest.raises(ValueError, match="PKCE"):
        x.auth.authorize_url(state="s", redirect_uri=x.redirect_uri)


def test_authorization_url_keeps_an_existing_query() -> None:
    url = authorization_url("https://auth.test/authorize?tenant=a", {"a": "b c", "skip": None})
    assert url == "https://auth.test/authorize?tenant=a&a=b%20c"


def test_x_exchange_connects_the_account(x: XSetup) -> None:
    connection = x.connect()
    assert connection.handle == USER["username"]
    assert connection.external_id == USER["id"]
    assert dict(connection.settings) == {"user_id": USER["id"]}
    XSettings.model_validate(dict(connection.settings))
    credentials = XCredentials.model_validate(dict(connection.credentials))
    assert credentials.refresh_token
    assert credentials.expires_at == NOW + 7200 == connection.expires_at
    assert credentials.scope is not None and set(credentials.scope.split()) == set(X_SCOPES.split())
    # The access token is one the fake API now accepts.
    assert x.fake.tokens[credentials.access_token] == "valid"
    me = x.client.get(
        f"{x.fake.url}/2/users/me",
        headers={"Authorization": f"Bearer {credentials.access_token}"},
    )
    assert me.status_code == 200
    # A confidential client: HTTP Basic on the token endpoint, the secret never in the body.
    [token_call] = x.fake.calls("/2/oauth2/token")
    assert token_call.headers["authorization"] == "Basic " + base64.b64encode(
        f"x-client:{X_SECRET}".encode()
    ).decode("ascii")
    form = token_call.form()
    assert "client_secret" not in form
    assert form["grant_type"] == ["authorization_code"]
    assert form["redirect_uri"] == [x.redirect_uri]
    assert form["client_id"] == ["x-client"]
    assert x.authority.code_exchanges == 1


def test_the_server_refuses_a_wrong_code_verifier(x_rfc: XSetup) -> None:
    code, _ = x_rfc.code()
    other_verifier, _ = pkce_pair()
    raw = x_rfc.client.post(
        f"{x_rfc.fake.url}/2/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": x_rfc.redirect_uri,
            "code_verifier": other_verifier,
            "client_id": "x-client",
        },
        auth=("x-client", X_SECRET),
    )
    assert raw.status_code == 400
    assert raw.json()["error"] == "invalid_grant"
    assert raw.headers["cache-control"] == "no-store"
    # The authenticator sees the same refusal (with a fresh code) as NeedsAuth.
    code, _ = x_rfc.code()
    with pytest.raises(NeedsAuth, match="connect the account again") as caught:
        x_rfc.auth.exchange(
            code=code, redirect_uri=x_rfc.redirect_uri, code_verifier=other_verifier
        )
    assert_clean(caught.value, code, other_verifier, X_SECRET)


def test_x_words_a_refused_code_its_own_way_and_it_still_reads_as_needs_auth(x: XSetup) -> None:
    code, _ = x.code()
    wrong, _ = pkce_pair()
    with pytest.raises(NeedsAuth, match="authorization code was invalid") as caught:
        x.auth.exchange(code=code, redirect_uri=x.redirect_uri, code_verifier=wrong)
    assert_clean(caught.value, code, wrong, X_SECRET)


def test_a_code_is_single_use_and_a_replay_revokes_what_it_gave(x_rfc: XSetup) -> None:
    code, verifier = x_rfc.code()
    [connection] = x_rfc.auth.exchange(
        code=code, redirect_uri=x_rfc.redirect_uri, code_verifier=verifier
    )
    access = connection.credentials["access_token"]
    assert x_rfc.fake.tokens[access] == "valid"
    with pytest.raises(NeedsAuth) as caught:
        x_rfc.auth.exchange(code=code, redirect_uri=x_rfc.redirect_uri, code_verifier=verifier)
    assert "invalid_grant" in str(caught.value)
    assert_clean(caught.value, code, verifier, access, X_SECRET)
    # RFC 6749 §4.1.2: the tokens the code gave are revoked.
    assert x_rfc.fake.tokens.get(access) is None
    assert x_rfc.authority.live_refresh_tokens() == []


def test_a_code_expires(x_rfc: XSetup) -> None:
    code, verifier = x_rfc.code()
    x_rfc.clock.now += 31  # X's codes last 30 seconds
    with pytest.raises(NeedsAuth, match="expired"):
        x_rfc.auth.exchange(code=code, redirect_uri=x_rfc.redirect_uri, code_verifier=verifier)


def test_x_refresh_rotates_and_the_old_refresh_token_is_then_refused(x: XSetup) -> None:
    connection = x.connect()
    first = dict(connection.credentials)
    x.clock.now += 7000
    refreshed = x.auth.refresh(account("x", first))
    second = dict(refreshed.credentials)
    XCredentials.model_validate(second)
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]  # rotated: the new one is stored
    assert refreshed.expires_at == second["expires_at"] == x.clock.now + 7200
    assert second["scope"] == first["scope"]
    assert x.fake.tokens[second["access_token"]] == "valid"
    [refresh_call] = x.fake.calls("/2/oauth2/token")[1:]
    assert refresh_call.form()["grant_type"] == ["refresh_token"]
    assert refresh_call.headers["authorization"].startswith("Basic ")
    # The rotated-out token used again: refused (X's words), and the whole family revoked.
    with pytest.raises(NeedsAuth, match="connect the account again") as caught:
        x.auth.refresh(account("x", first))
    assert "token was invalid" in str(caught.value)
    assert_clean(caught.value, first["refresh_token"], first["access_token"], X_SECRET)
    assert x.authority.counts["reuse_detected"] == 1
    assert x.fake.tokens.get(second["access_token"]) != "valid"
    with pytest.raises(NeedsAuth):
        x.auth.refresh(account("x", second))
    assert x.authority.refresh_calls == 3


def test_reuse_of_a_rotated_refresh_token_gets_invalid_grant(x_rfc: XSetup) -> None:
    first = dict(x_rfc.connect().credentials)
    x_rfc.auth.refresh(account("x", first))
    raw = x_rfc.client.post(
        f"{x_rfc.fake.url}/2/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        auth=("x-client", X_SECRET),
    )
    assert raw.status_code == 400
    assert raw.json() == {
        "error": "invalid_grant",
        "error_description": "the refresh token was already used",
    }


def test_two_refreshes_racing_with_one_refresh_token_log_the_user_out(x: XSetup) -> None:
    credentials = dict(x.connect().credentials)
    barrier = threading.Barrier(2)

    def refresh() -> str:
        barrier.wait()
        try:
            x.auth.refresh(account("x", credentials))
        except NeedsAuth:
            return "needs_auth"
        return "ok"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: refresh(), range(2)))
    assert outcomes == ["needs_auth", "ok"]
    # The winner's tokens went with the family: the refresher must never refresh twice at once.
    assert x.authority.live_access_tokens() == []


def test_x_keeps_the_old_refresh_token_when_none_comes_back(x: XSetup) -> None:
    first = dict(x.connect().credentials)
    x.authority.rotate_refresh_tokens = False
    x.authority.issue_refresh_tokens = False  # the answer carries no refresh_token
    second = dict(x.auth.refresh(account("x", first)).credentials)
    assert second["refresh_token"] == first["refresh_token"]
    assert second["access_token"] != first["access_token"]


def test_revoke_user_means_needs_auth(x: XSetup) -> None:
    credentials = dict(x.connect().credentials)
    x.authority.revoke_user(USER["id"])
    assert x.fake.tokens.get(credentials["access_token"]) is None
    with pytest.raises(NeedsAuth) as caught:
        x.auth.refresh(account("x", credentials))
    assert_clean(caught.value, credentials["refresh_token"], credentials["access_token"], X_SECRET)


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (503, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "30"}, 30.0),
        (429, {"x-rate-limit-reset": str(int(NOW) + 900)}, None),  # read against the real clock
        (500, {}, None),
    ],
)
def test_outages_and_rate_limits_are_transient(
    x: XSetup, status: int, headers: dict[str, str], wait: float | None
) -> None:
    credentials = dict(x.connect().credentials)
    x.fake.fail_next(1, status, {"title": "busy"}, headers, path="/2/oauth2/token")
    with pytest.raises(TransientError) as caught:
        x.auth.refresh(account("x", credentials))
    assert caught.value.http_status == status
    if wait is not None:
        assert caught.value.retry_after == wait
    elif "x-rate-limit-reset" in headers:
        assert caught.value.retry_after is not None
    assert_clean(caught.value, credentials["refresh_token"], X_SECRET)
    # The refresh token was not spent: the next try works.
    x.auth.refresh(account("x", credentials))


def test_connection_refused_is_transient(x: XSetup) -> None:
    auth = x.authenticator(api_url=refused_port())
    with pytest.raises(TransientError, match="could not be reached") as caught:
        auth.refresh(account("x", {"access_token": "at-1", "refresh_token": "rt-secret-1"}))
    assert_clean(caught.value, "rt-secret-1", X_SECRET)


def test_a_wrong_client_secret_is_the_operators_problem(x: XSetup) -> None:
    code, verifier = x.code()
    wrong = x.authenticator(secret="not-the-secret-123")
    with pytest.raises(PermanentError, match="X_CLIENT_ID and X_CLIENT_SECRET") as caught:
        wrong.exchange(code=code, redirect_uri=x.redirect_uri, code_verifier=verifier)
    assert not isinstance(caught.value, NeedsAuth)
    assert_clean(caught.value, code, verifier, "not-the-secret-123", X_SECRET)
    # RFC 6749 §5.2: invalid_client, 401 with WWW-Authenticate when Basic was used.
    raw = x.client.post(
        f"{x.fake.url}/2/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "rt"},
        auth=("x-client", "not-the-secret-123"),
    )
    assert (raw.status_code, raw.json()["error"]) == (401, "unauthorized_client")  # X's words
    x.authority.dialect = RFC6749
    raw = x.client.post(
        f"{x.fake.url}/2/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": "rt"},
        auth=("x-client", "not-the-secret-123"),
    )
    assert raw.status_code == 401
    assert raw.json()["error"] == "invalid_client"
    assert raw.headers["www-authenticate"].startswith("Basic")


def test_configured_needs_a_client_id_and_a_secret(x: XSetup, client: httpx.Client) -> None:
    assert x.auth.configured
    assert not x.authenticator(secret=None).configured
    unset = XAuthenticator(client, oauth=None, api_url=x.fake.url)
    assert not unset.configured
    with pytest.raises(PermanentError, match="X_CLIENT_ID and X_CLIENT_SECRET"):
        unset.authorize_url(state="s", redirect_uri=x.redirect_uri, code_challenge="c" * 43)
    with pytest.raises(PermanentError, match="X_CLIENT_ID"):
        unset.refresh(account("x", {"access_token": "a", "refresh_token": "r"}))


def test_a_public_client_sends_its_id_and_no_secret(x_rfc: XSetup) -> None:
    x_rfc.authority.register_client("x-public", None, [x_rfc.redirect_uri])
    oauth2 = OAuth2Client(
        x_rfc.client,
        platform="x",
        token_url=f"{x_rfc.fake.url}/2/oauth2/token",
        oauth=OAuthClient("x-public"),
        settings=("X_CLIENT_ID", "X_CLIENT_SECRET"),
        client_auth="basic",
        clock=x_rfc.clock,
    )
    assert not oauth2.configured
    verifier, challenge = pkce_pair()
    url = authorization_url(
        f"{x_rfc.fake.url}/i/oauth2/authorize",
        {
            "response_type": "code",
            "client_id": "x-public",
            "redirect_uri": x_rfc.redirect_uri,
            "scope": X_SCOPES,
            "state": "p",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    code = approve(x_rfc.client, url, x_rfc.redirect_uri)["code"]
    tokens = oauth2.exchange(code=code, redirect_uri=x_rfc.redirect_uri, code_verifier=verifier)
    assert tokens.refresh_token and tokens.expires_at == NOW + 7200
    assert "refresh_token" not in repr(tokens) and tokens.access_token not in repr(tokens)
    call = x_rfc.fake.calls("/2/oauth2/token")[-1]
    assert "authorization" not in call.headers
    assert call.form()["client_id"] == ["x-public"]
    assert "client_secret" not in call.form()
    assert oauth2.refresh(tokens.refresh_token).refresh_token != tokens.refresh_token


def test_grant_seeds_an_account_without_the_browser_step(x: XSetup) -> None:
    answer = x.authority.grant("x-client", USER["id"], X_SCOPES.split())
    assert x.fake.tokens[answer["access_token"]] == "valid"
    credentials = {"access_token": answer["access_token"], "refresh_token": answer["refresh_token"]}
    refreshed = x.auth.refresh(account("x", credentials))
    assert x.fake.tokens[refreshed.credentials["access_token"]] == "valid"


def test_the_fake_api_accepts_exactly_the_live_tokens(x: XSetup) -> None:
    credentials = dict(x.connect().credentials)
    token = credentials["access_token"]

    def me() -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return x.client.get(f"{x.fake.url}/2/users/me", headers=headers).status_code

    assert me() == 200
    x.clock.now += 7200  # the access token's lifetime is over
    assert me() == 401
    assert x.fake.tokens[token] == "expired"
    token = dict(x.auth.refresh(account("x", credentials)).credentials)["access_token"]
    assert me() == 200
    x.authority.expire_access_token(token)
    assert me() == 401
    assert x.fake.tokens["good-token"] == "valid"  # what the fake had before is kept


# -- the authorization endpoint (RFC 6749 §4.1.2.1) ----------------------------------------------


def test_the_authorization_endpoint_errors(x: XSetup) -> None:
    base = f"{x.fake.url}/i/oauth2/authorize"
    _, challenge = pkce_pair()
    good = {
        "response_type": "code",
        "client_id": "x-client",
        "redirect_uri": x.redirect_uri,
        "scope": X_SCOPES,
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }

    def get(**changes: str | None) -> httpx.Response:
        params = {k: v for k, v in (good | changes).items() if v is not None}
        return x.client.get(base, params=params, follow_redirects=False)

    # A redirect URI that is not registered, or an unknown client: 400, never a redirect.
    assert get(redirect_uri="https://evil.test/cb").status_code == 400
    assert get(client_id="nobody").status_code == 400
    # Other errors go back to the client with the state.
    missing_pkce = get(code_challenge=None, code_challenge_method=None)
    assert missing_pkce.status_code == 302
    assert redirect_params(missing_pkce.headers["location"]) == {
        "error": "invalid_request",
        "error_description": "code_challenge is required",
        "state": "st",
    }
    wrong_type = redirect_params(get(response_type="token").headers["location"])
    assert wrong_type["error"] == "unsupported_response_type"
    x.authority.approving_user = None
    denied = redirect_params(get().headers["location"])
    assert denied == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": "st",
    }


def test_the_token_endpoint_errors(x_rfc: XSetup) -> None:
    url = f"{x_rfc.fake.url}/2/oauth2/token"
    both = x_rfc.client.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": "r", "client_secret": X_SECRET},
        auth=("x-client", X_SECRET),
    )
    assert (both.status_code, both.json()["error"]) == (400, "invalid_request")
    grant = x_rfc.client.post(url, data={"grant_type": "password"}, auth=("x-client", X_SECRET))
    assert grant.json()["error"] == "unsupported_grant_type"
    as_json = x_rfc.client.post(url, json={"grant_type": "refresh_token"})
    assert as_json.json()["error"] == "invalid_request"
    body_auth = x_rfc.client.post(  # this client must use Basic
        url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": "r",
            "client_id": "x-client",
            "client_secret": X_SECRET,
        },
    )
    assert (body_auth.status_code, body_auth.json()["error"]) == (401, "invalid_client")
    assert "www-authenticate" not in body_auth.headers


# -- LinkedIn ------------------------------------------------------------------------------------


class LinkedInSetup:
    def __init__(self, fake: FakeLinkedIn, client: httpx.Client, **options: Any) -> None:
        self.fake = fake
        self.client = client
        self.clock = Clock()
        self.redirect_uri = CALLBACK.format("linkedin")
        self.authority = linkedin_authority(fake, clock=self.clock, **options)
        self.authority.register_client("li-client", LINKEDIN_SECRET, [self.redirect_uri])
        self.auth = LinkedInAuthenticator(
            client,
            oauth=OAuthClient("li-client", LINKEDIN_SECRET),
            oauth_url=f"{fake.url}/oauth/v2",
            api_url=fake.url,
            clock=self.clock,
        )

    def code(self) -> str:
        url = self.auth.authorize_url(state="st-li", redirect_uri=self.redirect_uri)
        back = approve(self.client, url, self.redirect_uri)
        assert back["state"] == "st-li"
        return back["code"]

    def connect(self):
        [connection] = self.auth.exchange(code=self.code(), redirect_uri=self.redirect_uri)
        return connection


@pytest.fixture
def fake_linkedin() -> Iterator[FakeLinkedIn]:
    fake = FakeLinkedIn()
    with running(fake):
        yield fake


@pytest.fixture
def linkedin(fake_linkedin: FakeLinkedIn, client: httpx.Client) -> LinkedInSetup:
    return LinkedInSetup(fake_linkedin, client)


def test_linkedin_authorize_url(linkedin: LinkedInSetup) -> None:
    url = linkedin.auth.authorize_url(
        state="s-9", redirect_uri=linkedin.redirect_uri, code_challenge="ignored" * 7
    )
    assert url.startswith(f"{linkedin.fake.url}/oauth/v2/authorization?")
    assert params_of(url) == {
        "response_type": "code",
        "client_id": "li-client",
        "redirect_uri": linkedin.redirect_uri,
        "state": "s-9",
        "scope": LINKEDIN_SCOPES,
    }
    assert linkedin.auth.uses_pkce is False


def test_linkedin_exchange_connects_the_member(linkedin: LinkedInSetup) -> None:
    connection = linkedin.connect()
    assert connection.handle == "Alice Example"
    assert connection.external_id == "8675309"
    assert dict(connection.settings) == {"author": "urn:li:person:8675309"}
    LinkedInSettings.model_validate(dict(connection.settings))
    credentials = LinkedInCredentials.model_validate(dict(connection.credentials))
    assert credentials.expires_at == NOW + 60 * 86400
    assert credentials.refresh_expires_at == NOW + 365 * 86400
    assert credentials.scope == "openid,profile,w_member_social"  # LinkedIn lists with commas
    assert linkedin.fake.tokens[credentials.access_token] == "valid"
    # The secret goes in the body, as LinkedIn documents; no Basic header.
    [call] = linkedin.fake.calls("/oauth/v2/accessToken")
    assert "authorization" not in call.headers
    form = call.form()
    assert form["client_id"] == ["li-client"]
    assert form["client_secret"] == [LINKEDIN_SECRET]
    assert "code_verifier" not in form


def test_linkedin_refresh_keeps_the_refresh_tokens_lifetime(linkedin: LinkedInSetup) -> None:
    first = dict(linkedin.connect().credentials)
    linkedin.clock.now += 59 * 86400
    second = dict(linkedin.auth.refresh(account("linkedin", first)).credentials)
    LinkedInCredentials.model_validate(second)
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] == first["refresh_token"]  # not rotated
    assert second["expires_at"] == linkedin.clock.now + 60 * 86400
    assert second["refresh_expires_at"] == first["refresh_expires_at"]  # 365 days from day 1
    linkedin.clock.now = first["refresh_expires_at"] + 1
    calls = linkedin.authority.refresh_calls
    with pytest.raises(NeedsAuth, match=r"expired on .* connect the account again"):
        linkedin.auth.refresh(account("linkedin", second))
    assert linkedin.authority.refresh_calls == calls  # known to be over: not even asked


def test_linkedin_without_refresh_tokens(fake_linkedin: FakeLinkedIn, client: httpx.Client) -> None:
    setup = LinkedInSetup(fake_linkedin, client, issue_refresh_tokens=False)
    connection = setup.connect()
    credentials = dict(connection.credentials)
    assert "refresh_token" not in credentials
    LinkedInCredentials.model_validate(credentials)
    # Before the access token expires there is nothing to do: the same credentials come back.
    setup.clock.now += 59 * 86400
    same = setup.auth.refresh(account("linkedin", credentials))
    assert dict(same.credentials) == credentials
    assert same.expires_at == connection.expires_at
    assert setup.authority.refresh_calls == 0
    # After it: a person must connect the account again.
    setup.clock.now += 86400 + 1
    with pytest.raises(NeedsAuth) as caught:
        setup.auth.refresh(account("linkedin", credentials))
    message = str(caught.value)
    assert "no refresh token" in message
    assert "connect the account again" in message
    assert "expired on 2027-" in message  # NOW + 60 days, as a date
    assert_clean(caught.value, credentials["access_token"], LINKEDIN_SECRET)


def test_linkedins_documented_code_errors_mean_connect_again(linkedin: LinkedInSetup) -> None:
    # An unknown code: 401 invalid_request "authorization code not found" (not the app's fault).
    with pytest.raises(NeedsAuth, match="authorization code not found") as caught:
        linkedin.auth.exchange(code="no-such-code-123", redirect_uri=linkedin.redirect_uri)
    assert caught.value.http_status == 401
    assert_clean(caught.value, "no-such-code-123", LINKEDIN_SECRET)
    # A used code: 400 invalid_redirect_uri "... Or authorization code expired. ...".
    code = linkedin.code()
    linkedin.auth.exchange(code=code, redirect_uri=linkedin.redirect_uri)
    with pytest.raises(NeedsAuth, match="invalid_redirect_uri") as caught:
        linkedin.auth.exchange(code=code, redirect_uri=linkedin.redirect_uri)
    assert_clean(caught.value, code, LINKEDIN_SECRET)


def test_linkedin_invalid_client(linkedin: LinkedInSetup, client: httpx.Client) -> None:
    wrong = LinkedInAuthenticator(
        client,
        oauth=OAuthClient("li-client", "wrong-secret-456"),
        oauth_url=f"{linkedin.fake.url}/oauth/v2",
        api_url=linkedin.fake.url,
    )
    with pytest.raises(PermanentError, match="LINKEDIN_CLIENT_ID and LINKEDIN_CLIENT_SECRET") as c:
        wrong.exchange(code=linkedin.code(), redirect_uri=linkedin.redirect_uri)
    assert_clean(c.value, "wrong-secret-456", LINKEDIN_SECRET)


# -- TikTok --------------------------------------------------------------------------------------


class TikTokSetup:
    def __init__(self, fake: FakeTikTok, client: httpx.Client, **options: Any) -> None:
        self.fake = fake
        self.client = client
        self.clock = Clock()
        self.redirect_uri = CALLBACK.format("tiktok")
        self.authority = tiktok_authority(fake, clock=self.clock, **options)
        self.authority.register_client("tt-key", TIKTOK_SECRET, [self.redirect_uri])
        self.auth = TikTokAuthenticator(
            client,
            oauth=OAuthClient("tt-key", TIKTOK_SECRET),
            api_url=fake.url,
            authorize_url=f"{fake.url}/v2/auth/authorize/",
            clock=self.clock,
        )

    def code(self) -> str:
        url = self.auth.authorize_url(state="st-tt", redirect_uri=self.redirect_uri)
        back = approve(self.client, url, self.redirect_uri)
        assert back["state"] == "st-tt"
        return back["code"]

    def connect(self):
        [connection] = self.auth.exchange(code=self.code(), redirect_uri=self.redirect_uri)
        return connection


@pytest.fixture
def fake_tiktok() -> Iterator[FakeTikTok]:
    fake = FakeTikTok()
    with running(fake):
        yield fake


@pytest.fixture
def tiktok(fake_tiktok: FakeTikTok, client: httpx.Client) -> TikTokSetup:
    return TikTokSetup(fake_tiktok, client)


def test_tiktok_authorize_url(tiktok: TikTokSetup) -> None:
    url = tiktok.auth.authorize_url(state="s-7", redirect_uri=tiktok.redirect_uri)
    assert url.startswith(f"{tiktok.fake.url}/v2/auth/authorize/?")
    assert params_of(url) == {
        "client_key": "tt-key",
        "scope": TIKTOK_SCOPES,
        "response_type": "code",
        "redirect_uri": tiktok.redirect_uri,
        "state": "s-7",
    }
    assert tiktok.auth.uses_pkce is False


def test_tiktok_exchange_connects_the_creator(tiktok: TikTokSetup) -> None:
    connection = tiktok.connect()
    assert connection.handle == "alice"  # creator_username, for post URLs
    assert connection.external_id == tiktok.fake.user["open_id"]
    assert dict(connection.settings) == {"privacy_level": "SELF_ONLY"}
    TikTokSettings.model_validate(dict(connection.settings))
    credentials = TikTokCredentials.model_validate(dict(connection.credentials))
    assert credentials.open_id == tiktok.fake.user["open_id"]
    assert credentials.scope == "user.info.basic,video.publish"
    assert credentials.expires_at == NOW + 86400
    assert credentials.refresh_expires_at == NOW + 365 * 86400
    assert tiktok.fake.tokens[credentials.access_token] == "ok"
    [call] = tiktok.fake.calls("/v2/oauth/token/")
    form = call.form()
    assert form["client_key"] == ["tt-key"]
    assert form["client_secret"] == [TIKTOK_SECRET]
    assert "client_id" not in form
    [info] = tiktok.fake.calls("/v2/user/info/")
    assert info.query["fields"] == ["open_id,union_id,avatar_url,display_name"]


def test_tiktok_refresh_stores_the_new_refresh_token(tiktok: TikTokSetup) -> None:
    first = dict(tiktok.connect().credentials)
    tiktok.clock.now += 86000
    second = dict(tiktok.auth.refresh(account("tiktok", first)).credentials)
    TikTokCredentials.model_validate(second)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["open_id"] == first["open_id"]
    assert second["expires_at"] == tiktok.clock.now + 86400
    assert second["refresh_expires_at"] == first["refresh_expires_at"]
    with pytest.raises(NeedsAuth, match="log_id"):
        tiktok.auth.refresh(account("tiktok", first))


def test_tiktok_error_body_shape(tiktok: TikTokSetup) -> None:
    raw = tiktok.client.post(
        f"{tiktok.fake.url}/v2/oauth/token/",
        data={
            "client_key": "tt-key",
            "client_secret": TIKTOK_SECRET,
            "code": "no-such-code",
            "grant_type": "authorization_code",
            "redirect_uri": tiktok.redirect_uri,
        },
    )
    assert raw.status_code == 400
    body = raw.json()
    assert set(body) == {"error", "error_description", "log_id"}
    assert body["error"] == "invalid_grant"
    with pytest.raises(NeedsAuth, match=r"invalid_grant: .*\(log_id \d+\)") as caught:
        tiktok.auth.exchange(code="no-such-code-2", redirect_uri=tiktok.redirect_uri)
    assert_clean(caught.value, "no-such-code-2", TIKTOK_SECRET)


def test_tiktok_refusals_are_read_whatever_the_http_status(
    fake_tiktok: FakeTikTok, client: httpx.Client
) -> None:
    setup = TikTokSetup(fake_tiktok, client, dialect=TikTokDialect(error_status=200))
    credentials = dict(setup.connect().credentials)
    setup.authority.revoke_user(fake_tiktok.user["open_id"])
    with pytest.raises(NeedsAuth) as caught:
        setup.auth.refresh(account("tiktok", credentials))
    assert caught.value.http_status == 200
    assert_clean(caught.value, credentials["refresh_token"], credentials["access_token"])


def test_tiktok_without_video_publish_cannot_be_connected(tiktok: TikTokSetup) -> None:
    tiktok.authority.consent_scopes = {"user.info.basic"}  # the user unticked posting
    with pytest.raises(NeedsAuth, match=r"video\.publish"):
        tiktok.connect()


def test_tiktok_invalid_client(tiktok: TikTokSetup, client: httpx.Client) -> None:
    wrong = TikTokAuthenticator(
        client, oauth=OAuthClient("tt-key", "wrong-secret-789"), api_url=tiktok.fake.url
    )
    with pytest.raises(PermanentError, match="TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET") as c:
        wrong.exchange(code=tiktok.code(), redirect_uri=tiktok.redirect_uri)
    assert c.value.http_status == 401
    assert_clean(c.value, "wrong-secret-789", TIKTOK_SECRET)


def test_tiktok_profile_errors_after_the_exchange(tiktok: TikTokSetup) -> None:
    tiktok.fake.fail_next(
        1,
        500,
        {"data": {}, "error": {"code": "internal_error", "message": "x", "log_id": "L1"}},
        path="/v2/user/info/",
    )
    with pytest.raises(TransientError, match="internal_error"):
        tiktok.connect()


# -- every platform ------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["x", "linkedin", "tiktok"])
def test_an_unexpected_refusal_is_permanent(
    platform: str,
    fake_x: FakeX,
    fake_linkedin: FakeLinkedIn,
    fake_tiktok: FakeTikTok,
    client: httpx.Client,
) -> None:
    setups: dict[str, Any] = {
        "x": lambda: XSetup(fake_x, client),
        "linkedin": lambda: LinkedInSetup(fake_linkedin, client),
        "tiktok": lambda: TikTokSetup(fake_tiktok, client),
    }
    setup = setups[platform]()
    credentials = dict(setup.connect().credentials)
    body = {"error": "invalid_scope", "error_description": "scope is not allowed"}
    setup.fake.fail_next(1, 400, body, path=setup.authority.token_path)
    with pytest.raises(PlatformError) as caught:
        setup.auth.refresh(account(platform, credentials))
    assert type(caught.value) is PermanentError
    assert "invalid_scope: scope is not allowed" in str(caught.value)
    assert_clean(caught.value, credentials["refresh_token"], credentials["access_token"])
