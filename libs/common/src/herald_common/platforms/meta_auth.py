"""Connecting Facebook Pages, Instagram accounts and Threads profiles, and keeping them connected.

Three `Authenticator`s over Meta's two login systems: Facebook Login (Facebook Pages, and
Instagram through the "Instagram API with Facebook Login") and the Threads Authorization Window.
None takes PKCE (see "unclear" below); all hold no state between calls.

What the documentation says, and how it is used
-----------------------------------------------
Facebook Login, manual flow
(https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow):

* The dialog is `https://www.facebook.com/{version}/dialog/oauth?client_id&redirect_uri&state
  &response_type=code&scope=…` (comma-separated permissions). The code it sends back is
  exchanged with `GET https://graph.facebook.com/{version}/oauth/access_token?client_id
  &redirect_uri&client_secret&code`, where `redirect_uri` "must be the same as the original
  request_uri"; the answer is `{"access_token", "token_type", "expires_in"}`.
* Long-lived tokens (https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived):
  `GET /{version}/oauth/access_token?grant_type=fb_exchange_token&client_id&client_secret
  &fb_exchange_token={token}` answers a long-lived User token, "generally lasts about 60 days"
  (`expires_in` 5183944 in the example). "You can not use an expired token to request a
  long-lived token": an expired token means a new login, so `refresh` raises NeedsAuth without
  asking when the stored `expires_at` has passed.
* Page tokens (https://developers.facebook.com/docs/pages/access-tokens/): "If you used a
  long-lived User access token, the Page access token has no expiration date." So a Facebook
  account stores the Page token from `GET /{version}/me/accounts?fields=id,name,access_token`
  (asked with the long-lived User token) with `expires_at` None, and its `refresh` only checks
  that the token still works (`GET /{version}/me?fields=id` with it). The debugging guide
  (https://developers.facebook.com/docs/facebook-login/guides/access-tokens/debugging) says
  "Facebook will not notify you that an access token has become invalid ... your app may only
  learn that ... when you attempt to make a request", and `/debug_token` needs an app token,
  so a plain request is the check. Credentials that carry an `expires_at` (a long-lived *User*
  token stored for a Page) are re-exchanged with fb_exchange_token while still valid.
* Instagram API with Facebook Login
  (https://developers.facebook.com/docs/instagram-platform/instagram-api-with-facebook-login/get-started):
  the same dialog with instagram_basic, instagram_content_publish, pages_show_list and
  pages_read_engagement; the Instagram professional account is found through the Pages the
  user granted (`instagram_business_account` on each Page; asked here as a field expansion of
  /me/accounts). Publishing takes the User token, so the account stores the long-lived User
  token with its `expires_at`, and `refresh` re-exchanges it (fb_exchange_token) before it
  expires.
* Errors (https://developers.facebook.com/docs/graph-api/guides/error-handling): code 190 is an
  expired or invalid token, its subcodes say why — 458 app not installed (the user removed the
  app), 459 user checkpointed, 460 password changed, 463 expired, 464 unconfirmed user, 467
  invalid access token (logged out) — all NeedsAuth here, with a sentence a person understands
  and Meta's own message. Throttling (4, 17, 32, 613, BUC codes, HTTP 429), 1, 2 and 5xx are
  transient; the rest as in herald_common.platforms.meta.graph_error.

Threads (https://developers.facebook.com/docs/threads/get-started/get-access-tokens-and-permissions,
https://developers.facebook.com/docs/threads/get-started/long-lived-tokens):

* Authorization Window `https://threads.net/oauth/authorize?client_id&redirect_uri&scope
  &response_type=code&state`; "Authorization codes are valid for 1 hour and can only be used
  once"; "#_ will be appended to the end of the redirect URI, but it is not part of the code"
  (stripped here if it reaches `exchange`).
* `POST https://graph.threads.net/oauth/access_token` (client_id, client_secret, code,
  grant_type=authorization_code, redirect_uri — "This must be the same URI") answers
  `{"access_token", "user_id"}`, a token valid for one hour; `GET /access_token?grant_type=
  th_exchange_token&client_secret&access_token` makes it long-lived: "valid for 60 days and can
  be refreshed as long as they are at least 24 hours old but have not expired"; `GET
  /refresh_access_token?grant_type=th_refresh_token&access_token` — "Refreshed tokens are
  valid for 60 days from the date at which they are refreshed. Tokens that have not been
  refreshed in 60 days will expire and can no longer be refreshed." These two endpoints take
  the token as a query parameter (the only way documented); Herald's log filter masks it.
* So `refresh` raises NeedsAuth for a token whose `expires_at` has passed, and does not ask to
  refresh a token younger than 24 hours (its age is 60 days less what is left of it): such a
  token has about 60 days left, so it is checked with `GET /{version}/me` and kept as it is.

App errors: a refused client id or secret (Graph code 101 "Error validating application.
Invalid application ID.", code 1 "Error validating client secret.") is a PermanentError naming
the settings (FACEBOOK_APP_ID / FACEBOOK_APP_SECRET, THREADS_APP_ID / THREADS_APP_SECRET): no
retry or new login fixes it. A code refused at the exchange (code 100 with subcode 36007
expired, 36008 redirect_uri differs, 36009 already used, or "Invalid verification code
format") is NeedsAuth: the person starts connecting again.

No message carries a token, code or secret: Meta's own words are passed on with every secret
sent in that request removed (Graph echoes a malformed token in "Malformed access token …").

What the documentation leaves unclear
-------------------------------------
* Whether re-exchanging a long-lived User token that is still valid gives a later expiry or the
  same one (the guide documents the exchange for short-lived tokens). The answer's
  `expires_in` is taken as it comes; if Meta keeps the old expiry, the account needs a new
  login when it passes, and the refresher says so (NeedsAuth).
* A missing `expires_in` on a long-lived exchange: "generally lasts about 60 days" is assumed.
* What Threads answers for a refresh of a token under 24 hours old, and for a reused code or a
  wrong secret: the Graph error shapes and codes above are assumed (the Instagram Login's flat
  `{"error_type", "code", "error_message"}` shape is read too). A refusal of a token that may be
  under 24 hours old (no `expires_at`, or issued less than a day ago) is not an error: the token
  is checked with /me and kept.
* Whether Page tokens are affected by the 90-day data-access expiry of the User who granted
  them; a Page token that stops working shows up as code 190 at the next check.
* The Threads docs now show threads.com and graph.threads.com; the defaults keep threads.net and
  graph.threads.net, which the same docs used until recently (both are configurable).
* Facebook Login's OIDC code flow with PKCE is "still in testing", and the Threads window
  documents no PKCE: `uses_pkce` is False for all three.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from pydantic import BaseModel, ValidationError

from herald_common.errors import NeedsAuth, PermanentError, PlatformError, TransientError
from herald_common.platforms.auth import Authenticator, Connection, OAuthClient, Refreshed
from herald_common.platforms.base import AccountRef
from herald_common.platforms.facebook import FacebookCredentials, FacebookSettings
from herald_common.platforms.http import json_object, transport_error
from herald_common.platforms.instagram import InstagramCredentials, InstagramSettings
from herald_common.platforms.meta import (
    GRAPH_API_VERSION,
    THREADS_API_VERSION,
    TOKEN_CODES,
    GraphError,
    graph_error,
    parse_graph_error,
)
from herald_common.platforms.threads import ThreadsCredentials, ThreadsSettings

log = logging.getLogger(__name__)

FACEBOOK_SCOPES = ("pages_show_list", "pages_read_engagement", "pages_manage_posts")
INSTAGRAM_SCOPES = (
    "instagram_basic",
    "instagram_content_publish",
    "pages_show_list",
    "pages_read_engagement",
)
THREADS_SCOPES = ("threads_basic", "threads_content_publish")

#: What a long-lived token lasts when Meta's answer does not say ("about 60 days").
LONG_LIVED_SECONDS = 60 * 86400.0
#: A Threads token can be refreshed once it is this old.
THREADS_MIN_REFRESH_AGE = 86400.0
#: How many pages of /me/accounts are read at most (100 Pages each).
MAX_PAGE_READS = 20

#: Subcodes of code 190 in words (the error-handling guide's "Authentication Error Subcodes").
_TOKEN_REASONS = {
    458: "the person removed Herald's app from their account",
    459: "Meta has locked the person's account until they log in on facebook.com",
    460: "the person changed their password, which ends the app's access",
    463: "the access token has expired",
    464: "the person's account is not confirmed",
    467: "the access token is no longer valid (the person logged out or the session was ended)",
}
#: Code-exchange subcodes: expired, redirect_uri differs, already used.
_CODE_SUBCODES = frozenset({36007, 36008, 36009})
#: Words of Meta's refusals of the app's own credentials.
_APP_PHRASES = (
    "client secret",
    "client_secret",
    "app secret",
    "invalid application id",
    "error validating application",
    "invalid client_id",
    "invalid client id",
    "invalid platform app",
)
_REDACTED = "[redacted]"


# -- errors ---------------------------------------------------------------------------------


def _flat_error(response: httpx.Response) -> GraphError | None:
    """The Instagram Login's `{"error_type", "code", "error_message"}` body, as a GraphError."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, Mapping) or not isinstance(body.get("error_message"), str):
        return None
    error_type = body.get("error_type")
    return GraphError(
        message=body["error_message"].strip(),
        type=error_type if isinstance(error_type, str) else None,
    )


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, _REDACTED)
    return text


def _scrubbed(exc: PlatformError, secrets: tuple[str, ...]) -> PlatformError:
    message = _scrub(exc.message, secrets)
    if message == exc.message:
        return exc
    clean = copy.copy(exc)
    clean.message = message
    clean.args = (message,)
    return clean


def _words(error: GraphError, status: int, secrets: tuple[str, ...]) -> str:
    """Meta's message with its codes and trace id, for a person or a bug report."""
    text = error.message or error.user_title or "no message"
    if error.user_msg and error.user_msg not in text:
        text = f"{text} — {error.user_msg}"
    details = []
    if error.code is not None:
        details.append(
            f"code {error.code}" + ("" if error.subcode is None else f"/{error.subcode}")
        )
    details.append(f"HTTP {status}")
    if error.fbtrace_id:
        details.append(f"fbtrace_id {error.fbtrace_id}")
    return _scrub(f"Meta said: {text} ({', '.join(details)})", secrets)


def _is_app_error(error: GraphError) -> bool:
    if error.code == 101:
        return True
    if error.code in TOKEN_CODES:
        return False  # "… has not authorized application 123" is about the person's token
    message = error.message.lower()
    return any(phrase in message for phrase in _APP_PHRASES)


def _is_code_error(error: GraphError) -> bool:
    message = error.message.lower()
    if error.subcode in _CODE_SUBCODES:
        return True
    if error.code not in (100, None):
        return False
    return (
        "verification code" in message
        or "authorization code" in message
        or ("code" in message and any(w in message for w in ("used", "expired", "not found")))
    )


def meta_auth_error(
    platform: str,
    response: httpx.Response,
    *,
    app_settings: tuple[str, str],
    secrets: tuple[str, ...] = (),
    code_exchange: bool = False,
    now: Callable[[], float] = time.time,
) -> PlatformError:
    """A failed login or token call as PermanentError (the app), NeedsAuth or TransientError."""
    status = response.status_code
    error = parse_graph_error(response) or _flat_error(response)
    if error is not None:
        words = _words(error, status, secrets)
        if _is_app_error(error):
            app_id, app_secret = app_settings
            return PermanentError(
                f"{platform}: Meta refused Herald's app credentials; check {app_id} and "
                f"{app_secret} ({words})",
                http_status=status,
            )
        if code_exchange and _is_code_error(error):
            return NeedsAuth(
                f"{platform}: the authorization code is invalid or was already used; start "
                f"connecting again ({words})",
                http_status=status,
            )
        if error.code in TOKEN_CODES or (error.type == "OAuthException" and error.code is None):
            reason = _TOKEN_REASONS.get(
                error.subcode or 0, "Meta no longer accepts the account's access token"
            )
            return NeedsAuth(
                f"{platform}: {reason}; connect the account again ({words})", http_status=status
            )
    return _scrubbed(graph_error(platform, response, now=now), secrets)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _checked(model: type[BaseModel], platform: str, what: str, values: Mapping[str, Any]) -> None:
    try:
        model.model_validate(dict(values))
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem.get("loc", ())) or what
        raise PermanentError(
            f"{platform}: Meta's answer does not make valid {what} ({where}: {problem['msg']})"
        ) from None


# -- the shared part ------------------------------------------------------------------------


class _MetaAuthenticator(Authenticator):
    """Calls to one Meta host with the app's credentials; errors as Herald's."""

    #: The settings that hold the app id and secret, for messages.
    app_settings: ClassVar[tuple[str, str]]

    def __init__(
        self,
        client: httpx.Client,
        *,
        oauth: OAuthClient | None,
        api_url: str,
        api_version: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._oauth = oauth
        self._api = api_url.rstrip("/")
        self._version = api_version
        self._clock = clock

    @property
    def configured(self) -> bool:
        return bool(self._oauth and self._oauth.client_id and self._oauth.client_secret)

    def _app(self) -> tuple[str, str]:
        """The app id and secret; PermanentError when this deployment has none."""
        oauth = self._oauth
        if oauth is None or not oauth.client_id or not oauth.client_secret:
            app_id, app_secret = self.app_settings
            raise PermanentError(
                f"{self.platform}: connecting accounts needs {app_id} and {app_secret} to be set"
            )
        return oauth.client_id, oauth.client_secret

    def _call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        token: str | None = None,
        secrets: tuple[str, ...] = (),
        code_exchange: bool = False,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        hidden = (*secrets, token or "")
        try:
            response = self._client.request(method, url, params=params, data=data, headers=headers)
        except httpx.TransportError as exc:
            # The request's URL may carry secrets: the cause is not chained.
            raise transport_error(self.platform, exc) from None
        if not response.is_success:
            raise meta_auth_error(
                self.platform,
                response,
                app_settings=self.app_settings,
                secrets=hidden,
                code_exchange=code_exchange,
                now=self._clock,
            )
        return json_object(self.platform, response)

    def _token_from(self, body: Mapping[str, Any], step: str) -> tuple[str, float | None]:
        """The access token of a token answer and when it expires (None: not said)."""
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise TransientError(f"{self.platform}: Meta's {step} answer has no access token")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            return token, self._clock() + float(expires_in)
        return token, None

    def _stored_token(self, account: AccountRef) -> str:
        token = account.credentials.get("access_token")
        if not token:
            raise NeedsAuth(f"{self.platform}: the account has no access token; connect it again")
        return str(token)

    def _refused_if_expired(self, expires_at: float | None) -> None:
        if expires_at is not None and expires_at <= self._clock():
            raise NeedsAuth(
                f"{self.platform}: the access token expired on {_when(expires_at)}, and Meta "
                "cannot renew an expired token; connect the account again"
            )


class _FacebookLogin(_MetaAuthenticator):
    """Facebook Login: the dialog, the code exchange, long-lived User tokens, /me/accounts."""

    app_settings = ("FACEBOOK_APP_ID", "FACEBOOK_APP_SECRET")
    scopes: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        client: httpx.Client,
        *,
        oauth: OAuthClient | None,
        api_url: str = "https://graph.facebook.com",
        api_version: str = GRAPH_API_VERSION,
        dialog_url: str = "https://www.facebook.com",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client, oauth=oauth, api_url=api_url, api_version=api_version, clock=clock)
        self._dialog = dialog_url.rstrip("/")
        self._base = f"{self._api}/{api_version}"

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None = None
    ) -> str:
        client_id, _ = self._app()
        query = urlencode(
            {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "response_type": "code",
                "scope": ",".join(self.scopes),
            }
        )
        return f"{self._dialog}/{self._version}/dialog/oauth?{query}"

    def _user_token(self, code: str, redirect_uri: str) -> tuple[str, float]:
        """The long-lived User token an authorization code grants, and when it expires."""
        client_id, secret = self._app()
        body = self._call(
            "GET",
            f"{self._base}/oauth/access_token",
            params={
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "client_secret": secret,
                "code": code,
            },
            secrets=(secret, code),
            code_exchange=True,
        )
        short, _ = self._token_from(body, "code exchange")
        return self._long_lived(short)

    def _exchange_again(
        self,
        account: AccountRef,
        token: str,
        expires_at: float | None,
        model: type[BaseModel],
    ) -> Refreshed:
        """A still-valid long-lived User token exchanged for a new one (fb_exchange_token)."""
        self._refused_if_expired(expires_at)
        new_token, new_expiry = self._long_lived(token)
        credentials = {**account.credentials, "access_token": new_token, "expires_at": new_expiry}
        _checked(model, self.platform, "credentials", credentials)
        return Refreshed(credentials=credentials, expires_at=new_expiry)

    def _long_lived(self, token: str) -> tuple[str, float]:
        """fb_exchange_token: a long-lived User token for a valid one."""
        client_id, secret = self._app()
        body = self._call(
            "GET",
            f"{self._base}/oauth/access_token",
            params={
                "grant_type": "fb_exchange_token",
                "client_id": client_id,
                "client_secret": secret,
                "fb_exchange_token": token,
            },
            secrets=(secret, token),
        )
        long_lived, expires_at = self._token_from(body, "long-lived token")
        if expires_at is None:
            expires_at = self._clock() + LONG_LIVED_SECONDS
        return long_lived, expires_at

    def _pages(self, user_token: str, fields: str) -> Iterator[Mapping[str, Any]]:
        """The Pages the User token was granted (all of /me/accounts' pages)."""
        params = {"fields": fields, "limit": "100"}
        for _ in range(MAX_PAGE_READS):
            body = self._call("GET", f"{self._base}/me/accounts", params=params, token=user_token)
            for page in body.get("data") or ():
                if isinstance(page, Mapping) and page.get("id"):
                    yield page
            paging = _mapping(body.get("paging"))
            after = _mapping(paging.get("cursors")).get("after")
            # `next` carries the token in its query string: only its cursor is used.
            if not paging.get("next") or not isinstance(after, str) or not after:
                return
            params = {**params, "after": after}

    def _check(self, token: str) -> dict[str, Any]:
        """GET /me with the token: NeedsAuth when Meta no longer accepts it."""
        return self._call("GET", f"{self._base}/me", params={"fields": "id"}, token=token)


# -- Facebook Pages -------------------------------------------------------------------------


class FacebookAuthenticator(_FacebookLogin):
    """Facebook Pages: one Connection per Page granted, each with its own Page token."""

    platform = "facebook"
    scopes = FACEBOOK_SCOPES

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[Connection]:
        user_token, _ = self._user_token(code, redirect_uri)
        connections: list[Connection] = []
        seen: set[str] = set()
        for page in self._pages(user_token, "id,name,access_token"):
            page_id, page_token = str(page["id"]), page.get("access_token")
            if page_id in seen or not isinstance(page_token, str) or not page_token:
                continue  # no token: the person has no task on the Page that grants one
            seen.add(page_id)
            settings = {"page_id": page_id}
            credentials = {"access_token": page_token}
            _checked(FacebookSettings, self.platform, "Page settings", settings)
            _checked(FacebookCredentials, self.platform, "Page credentials", credentials)
            name = page.get("name")
            connections.append(
                Connection(
                    handle=str(name) if name else page_id,
                    external_id=page_id,
                    settings=settings,
                    credentials=credentials,
                    # A Page token from a long-lived User token has no expiration date.
                    expires_at=None,
                )
            )
        if not connections:
            raise PermanentError(
                "facebook: no Facebook Page was granted; connect again and choose at least one "
                "Page you manage in Facebook's dialog"
            )
        return connections

    def refresh(self, account: AccountRef) -> Refreshed:
        token = self._stored_token(account)
        expires_at = self.expires_at(account.credentials)
        if expires_at is None:
            # A Page token does not expire: check it still works and keep it.
            self._check(token)
            return Refreshed(credentials=dict(account.credentials), expires_at=None)
        # A long-lived User token: exchange it again while it is valid.
        return self._exchange_again(account, token, expires_at, FacebookCredentials)


# -- Instagram (API with Facebook Login) ----------------------------------------------------


class InstagramAuthenticator(_FacebookLogin):
    """Instagram professional accounts reached through the Facebook Pages they are linked to."""

    platform = "instagram"
    scopes = INSTAGRAM_SCOPES

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[Connection]:
        user_token, expires_at = self._user_token(code, redirect_uri)
        connections: list[Connection] = []
        seen: set[str] = set()
        fields = "id,name,access_token,instagram_business_account{id,username}"
        for page in self._pages(user_token, fields):
            account = page.get("instagram_business_account")
            if not isinstance(account, Mapping) or not account.get("id"):
                continue
            ig_id = str(account["id"])
            if ig_id in seen:
                continue
            seen.add(ig_id)
            settings = {"ig_user_id": ig_id}
            credentials = {"access_token": user_token, "expires_at": expires_at}
            _checked(InstagramSettings, self.platform, "account settings", settings)
            _checked(InstagramCredentials, self.platform, "account credentials", credentials)
            username = account.get("username")
            connections.append(
                Connection(
                    handle=str(username) if username else ig_id,
                    external_id=ig_id,
                    settings=settings,
                    credentials=credentials,
                    expires_at=expires_at,
                )
            )
        if not connections:
            raise PermanentError(
                "instagram: none of the Facebook Pages granted has an Instagram professional "
                "account linked to it; link the Instagram business or creator account to a "
                "Facebook Page, then connect again and choose that Page"
            )
        return connections

    def refresh(self, account: AccountRef) -> Refreshed:
        token = self._stored_token(account)
        expires_at = self.expires_at(account.credentials)
        return self._exchange_again(account, token, expires_at, InstagramCredentials)


# -- Threads --------------------------------------------------------------------------------


class ThreadsAuthenticator(_MetaAuthenticator):
    """A Threads profile: short-lived → long-lived token, refreshed with th_refresh_token."""

    platform = "threads"
    app_settings = ("THREADS_APP_ID", "THREADS_APP_SECRET")

    def __init__(
        self,
        client: httpx.Client,
        *,
        oauth: OAuthClient | None,
        api_url: str = "https://graph.threads.net",
        api_version: str = THREADS_API_VERSION,
        authorize_url: str = "https://threads.net/oauth/authorize",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(client, oauth=oauth, api_url=api_url, api_version=api_version, clock=clock)
        self._authorize = authorize_url

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None = None
    ) -> str:
        client_id, _ = self._app()
        query = urlencode(
            {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": ",".join(THREADS_SCOPES),
                "response_type": "code",
                "state": state,
            }
        )
        return f"{self._authorize}?{query}"

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[Connection]:
        client_id, secret = self._app()
        code = code.removesuffix("#_")
        body = self._call(
            "POST",
            f"{self._api}/oauth/access_token",
            data={
                "client_id": client_id,
                "client_secret": secret,
                "code": code,
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
            },
            secrets=(secret, code),
            code_exchange=True,
        )
        short, _ = self._token_from(body, "code exchange")
        body = self._call(
            "GET",
            f"{self._api}/access_token",
            params={
                "grant_type": "th_exchange_token",
                "client_secret": secret,
                "access_token": short,
            },
            secrets=(secret, short),
        )
        token, expires_at = self._token_from(body, "long-lived token")
        if expires_at is None:
            expires_at = self._clock() + LONG_LIVED_SECONDS
        profile = self._me(token, "id,username")
        user_id = str(profile.get("id") or body.get("user_id") or "")
        if not user_id:
            raise TransientError("threads: Threads did not say which profile the token is for")
        settings = {"threads_user_id": user_id}
        credentials = {"access_token": token, "expires_at": expires_at}
        _checked(ThreadsSettings, self.platform, "profile settings", settings)
        _checked(ThreadsCredentials, self.platform, "profile credentials", credentials)
        username = profile.get("username")
        return [
            Connection(
                handle=str(username) if username else user_id,
                external_id=user_id,
                settings=settings,
                credentials=credentials,
                expires_at=expires_at,
            )
        ]

    def refresh(self, account: AccountRef) -> Refreshed:
        token = self._stored_token(account)
        expires_at = self.expires_at(account.credentials)
        self._refused_if_expired(expires_at)
        now = self._clock()
        if expires_at is not None and now < self._refreshable_from(expires_at):
            # Under 24 hours old: it cannot be refreshed yet and has ~60 days left. Check it.
            self._me(token, "id")
            return Refreshed(credentials=dict(account.credentials), expires_at=expires_at)
        try:
            body = self._call(
                "GET",
                f"{self._api}/refresh_access_token",
                params={"grant_type": "th_refresh_token", "access_token": token},
            )
        except PermanentError as exc:
            young = expires_at is None or now < self._refreshable_from(expires_at) + 3600
            if not young:
                raise
            # The docs imply a token under 24 hours old is refused but still valid.
            self._me(token, "id")
            log.info("threads: refresh refused, token kept (it may be under 24 h old): %s", exc)
            return Refreshed(credentials=dict(account.credentials), expires_at=expires_at)
        new_token, new_expiry = self._token_from(body, "refresh")
        if new_expiry is None:
            new_expiry = self._clock() + LONG_LIVED_SECONDS
        credentials = {**account.credentials, "access_token": new_token, "expires_at": new_expiry}
        _checked(ThreadsCredentials, self.platform, "credentials", credentials)
        return Refreshed(credentials=credentials, expires_at=new_expiry)

    @staticmethod
    def _refreshable_from(expires_at: float) -> float:
        """When a token expiring at `expires_at` is 24 hours old (it was issued for 60 days)."""
        return expires_at - LONG_LIVED_SECONDS + THREADS_MIN_REFRESH_AGE

    def _me(self, token: str, fields: str) -> dict[str, Any]:
        return self._call(
            "GET", f"{self._api}/{self._version}/me", params={"fields": fields}, token=token
        )
