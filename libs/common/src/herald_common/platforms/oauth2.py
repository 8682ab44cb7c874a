"""Connecting X, LinkedIn and TikTok accounts: a small OAuth 2.0 client and three Authenticators.

The generic part, `OAuth2Client`, is one app's token endpoint: the authorization-code grant
(RFC 6749 §4.1.3, with the PKCE verifier of RFC 7636 §4.5 where the flow uses one) and the
refresh grant (RFC 6749 §6), form-encoded, with the client authenticated either by HTTP Basic
(RFC 6749 §2.3.1) or by `client_id`/`client_secret` in the body. It turns every answer into
`Tokens` or into Herald's errors:

* a network failure or timeout, 5xx, 408, 425, `temporarily_unavailable`/`server_error`:
  TransientError (429: RateLimited, a TransientError), with `retry_after` from Retry-After (or
  the platform's reset header);
* RFC 6749 §5.2 `invalid_grant` (a code or refresh token that is expired, revoked, already used
  or issued to someone else), `access_denied`, or a platform's own words for the same thing
  (below): NeedsAuth, in words a person understands, with the platform's error_description;
* `invalid_client` / `unauthorized_client`, or a 401 without a readable body: PermanentError
  naming the settings to check (X_CLIENT_ID/X_CLIENT_SECRET, ...): the operator's
  configuration is wrong, not the user's account;
* anything else: PermanentError with the platform's words.

No token, code, verifier or secret is ever put in an exception message: the platform's
error_description is shown with anything Herald sent in that request blanked out.

What each platform's documentation says, and how it is used
----------------------------------------------------------
X (https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token):
* Authorize at https://x.com/i/oauth2/authorize with response_type=code, client_id,
  redirect_uri, scope (space-separated), state, code_challenge and code_challenge_method (PKCE
  is required; S256 is used here). `offline.access` is what makes X issue a refresh token.
* Token endpoint POST https://api.x.com/2/oauth2/token, form-encoded: code, grant_type,
  redirect_uri, code_verifier, client_id. "If you are working with confidential clients, you
  will need to use a basic authentication scheme" (client_id:client_secret) on the token
  endpoint; public clients send only client_id. client_id is sent in the body either way, as
  the docs' examples do.
* Access tokens last two hours; refresh with grant_type=refresh_token and refresh_token. X
  rotates refresh tokens: the new one is stored, the old one is kept only when none comes back.
* Not documented, seen in practice (public client code and issue threads, e.g.
  github.com/plhery/node-twitter-api-v2/issues/496): X refuses a spent or revoked refresh token
  with 400 {"error": "invalid_request", "error_description": "Value passed for the token was
  invalid."}, a bad code with "Value passed for the authorization code was invalid.", and a
  confidential client without Basic auth with 401 unauthorized_client "Missing valid
  authorization header". The first two are read as NeedsAuth.
* The account: GET https://api.x.com/2/users/me → {"data": {"id", "name", "username"}}.

LinkedIn (https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow,
https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens,
https://learn.microsoft.com/en-us/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2):
* Authorize at https://www.linkedin.com/oauth/v2/authorization with response_type=code,
  client_id, redirect_uri, state, scope (space-separated): "openid profile w_member_social".
  No PKCE for web apps (LinkedIn takes it only for native apps), so `uses_pkce` is False and a
  challenge or verifier handed in is not sent.
* Token endpoint POST https://www.linkedin.com/oauth/v2/accessToken, form-encoded, with
  client_id and client_secret in the body. Answer: access_token, expires_in (60 days), scope
  (LinkedIn lists it comma-separated), and for apps approved for programmatic refresh tokens
  (Marketing Developer Platform partners) refresh_token and refresh_token_expires_in (365
  days, counted from the first grant: a refresh does not extend it). Other apps get no refresh
  token: `refresh` then has nothing to do until the access token expires, and NeedsAuth after.
* Its documented token-endpoint errors are not RFC 6749's: 401 invalid_request "Unable to
  retrieve access token: authorization code not found", 400 invalid_redirect_uri "Unable to
  retrieve access token: appid/redirect uri/code verifier does not match authorization code.
  Or authorization code expired. ..." Both are read as NeedsAuth (connect again).
* The account: GET https://api.linkedin.com/v2/userinfo (OpenID Connect) → sub, name, ...;
  the author to post as is urn:li:person:{sub}.

TikTok (https://developers.tiktok.com/doc/login-kit-web,
https://developers.tiktok.com/doc/oauth-user-access-token-management,
https://developers.tiktok.com/doc/oauth-error-handling,
https://developers.tiktok.com/docs/en/oauth-refresh-a-user-access-token):
* Authorize at https://www.tiktok.com/v2/auth/authorize/ with client_key (TikTok's name for
  the client id), scope (comma-separated), response_type=code, redirect_uri, state. The web
  guide lists no code_challenge, and the token endpoint's code_verifier is "Required for
  mobile and desktop app only" (and TikTok's desktop challenge is a hex SHA-256, not RFC
  7636's base64url), so `uses_pkce` is False here.
* Token endpoint POST https://open.tiktokapis.com/v2/oauth/token/, form-encoded: client_key,
  client_secret, code, grant_type, redirect_uri. Answer: open_id, scope (comma-separated),
  access_token, expires_in, refresh_token, refresh_expires_in, token_type. Refresh with
  grant_type=refresh_token; "always save the refresh_token from the most recent response".
* OAuth errors are {"error", "error_description", "log_id"} with RFC 6749's codes; the docs do
  not give their HTTP status, so the error field is read whatever the status is (a 200 with an
  `error` is a refusal too). The log_id is kept in the message: TikTok support asks for it.
* A user may grant only some of the scopes asked for; an account connected without
  `video.publish` cannot be posted to, so the exchange refuses it (NeedsAuth).
* The account: GET /v2/user/info/?fields=open_id,union_id,avatar_url,display_name. The handle
  Herald needs is the username (it builds post URLs), which user/info gives only with the
  user.info.profile scope; the Content Posting API's creator_info (which `video.publish`
  covers) gives it as creator_username, so the exchange asks that too.

Left unclear by the documentation
---------------------------------
* X: how long a refresh token lives, and the exact error bodies (see above).
* LinkedIn: whether a refresh answer repeats the refresh token (handled either way), and the
  error body for an expired or revoked refresh token (invalid_grant is assumed, per RFC 6749).
* TikTok: the HTTP status of OAuth errors; the token lifetimes (pages disagree: 24 hours / 365
  days, or 2 hours / 180 days) — only expires_in / refresh_expires_in are trusted.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import quote, quote_plus, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ValidationError

from herald_common.errors import (
    NeedsAuth,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
)
from herald_common.platforms.auth import Authenticator, Connection, OAuthClient, Refreshed
from herald_common.platforms.base import AccountRef
from herald_common.platforms.http import (
    RETRYABLE_STATUSES,
    retry_after_seconds,
    status_error,
    transport_error,
)
from herald_common.platforms.linkedin import AUTHOR_PATTERN, LinkedInCredentials, LinkedInSettings
from herald_common.platforms.tiktok import TikTokCredentials, TikTokSettings
from herald_common.platforms.x import XCredentials, XSettings

DEFAULT_X_API_URL = "https://api.x.com"
DEFAULT_X_AUTHORIZE_URL = "https://x.com/i/oauth2/authorize"
DEFAULT_LINKEDIN_OAUTH_URL = "https://www.linkedin.com/oauth/v2"
DEFAULT_LINKEDIN_API_URL = "https://api.linkedin.com"
DEFAULT_TIKTOK_API_URL = "https://open.tiktokapis.com"
DEFAULT_TIKTOK_AUTHORIZE_URL = "https://www.tiktok.com/v2/auth/authorize/"

X_SCOPES = "tweet.read tweet.write users.read offline.access media.write"
LINKEDIN_SCOPES = "openid profile w_member_social"
TIKTOK_SCOPES = "user.info.basic,video.publish"

X_TOKEN_PATH = "/2/oauth2/token"  # noqa: S105 (a path, not a secret)
X_ME_PATH = "/2/users/me"
LINKEDIN_USERINFO_PATH = "/v2/userinfo"
TIKTOK_TOKEN_PATH = "/v2/oauth/token/"  # noqa: S105 (a path, not a secret)
TIKTOK_USER_INFO_PATH = "/v2/user/info/"
TIKTOK_USER_FIELDS = "open_id,union_id,avatar_url,display_name"
TIKTOK_CREATOR_INFO_PATH = "/v2/post/publish/creator_info/query/"

#: The privacy level a newly connected TikTok account posts with (see TikTokAuthenticator).
TIKTOK_DEFAULT_PRIVACY = "SELF_ONLY"

#: RFC 6749 §5.2 / §4.1.2.1 codes that mean the grant itself is no longer any good.
_GRANT_REFUSED = frozenset({"invalid_grant", "access_denied"})
#: Codes that mean the app's own registration (id, secret, permissions) is wrong.
_CLIENT_REFUSED = frozenset({"invalid_client", "unauthorized_client"})
#: RFC 6749 §4.1.2.1 codes for "try again later".
_SERVER_TROUBLE = frozenset({"temporarily_unavailable", "server_error"})
#: The longest piece of a platform's own error text put into a message.
_MAX_DETAIL = 300


@dataclass(frozen=True)
class Tokens:
    """What a token endpoint granted; the secrets are kept out of repr."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    #: When the access token / refresh token expire (epoch seconds), None when not given.
    expires_at: float | None = None
    refresh_expires_at: float | None = None
    scope: str | None = None
    #: The other fields of the answer (TikTok's open_id), without the tokens.
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)


def authorization_url(base: str, params: Mapping[str, str | None]) -> str:
    """`base` with the parameters added to its query (RFC 6749 §4.1.1); None values are left out.

    Spaces are encoded as %20 (as X's documentation shows scopes), not "+".
    """
    parts = urlsplit(base)
    query = urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
    merged = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, merged, parts.fragment))


class OAuth2Client:
    """One registered app at one token endpoint: the code exchange and the refresh grant.

    `client_auth` is how the client authenticates when it has a secret: "basic" (HTTP Basic,
    RFC 6749 §2.3.1) or "body" (client_id and client_secret form fields). Without a secret the
    client is public and sends its id only. `id_param` is the name of the client-id field
    (TikTok's is "client_key"). `settings` names the settings that hold the id and secret, for
    messages about a misconfigured app. `grant_refused(error, description)` says whether a
    platform's non-standard error means the code or refresh token is no good (NeedsAuth).
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        platform: str,
        token_url: str,
        oauth: OAuthClient | None,
        settings: tuple[str, str],
        client_auth: Literal["basic", "body"] = "body",
        id_param: str = "client_id",
        send_id_with_basic: bool = False,
        grant_refused: Callable[[str | None, str], bool] | None = None,
        reset_headers: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self.platform = platform
        self.token_url = token_url
        self.oauth = oauth
        self.settings = settings
        self._client_auth = client_auth
        self.id_param = id_param
        self._send_id_with_basic = send_id_with_basic
        self._grant_refused = grant_refused or (lambda error, description: False)
        self._reset_headers = reset_headers
        self._clock = clock

    @property
    def client_id(self) -> str | None:
        return self.oauth.client_id if self.oauth and self.oauth.client_id else None

    @property
    def configured(self) -> bool:
        """Whether the app has an id and a secret (all three platforms' web apps need both).

        Requests are still made without a secret, as a public client (RFC 6749 §2.1) sends
        them: its id in the body and no authentication.
        """
        return bool(self.oauth and self.oauth.client_id and self.oauth.client_secret)

    def not_configured(self) -> PermanentError:
        return PermanentError(
            f"{self.platform}: connecting accounts needs {self.settings[0]} and "
            f"{self.settings[1]} to be set"
        )

    def exchange(self, *, code: str, redirect_uri: str, code_verifier: str | None = None) -> Tokens:
        """The tokens an authorization code grants (RFC 6749 §4.1.3)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        return self._request(form, "authorization code", (code, code_verifier))

    def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for a refresh token (RFC 6749 §6)."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._request(form, "refresh token", (refresh_token,))

    # -- the request ------------------------------------------------------------------------

    def _request(self, form: dict[str, str], what: str, sent: Iterable[str | None]) -> Tokens:
        client_id = self.client_id
        if client_id is None:
            raise self.not_configured()
        secret = self.oauth.client_secret if self.oauth else None
        headers = {"Accept": "application/json"}
        body = dict(form)
        if not secret:
            # A public client (RFC 6749 §2.1): it identifies itself, it cannot authenticate.
            body[self.id_param] = client_id
        elif self._client_auth == "basic":
            pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            if self._send_id_with_basic:
                body[self.id_param] = client_id
        else:
            body[self.id_param] = client_id
            body["client_secret"] = secret
        hidden = [*sent, secret]
        try:
            response = self._http.post(self.token_url, data=body, headers=headers)
        except httpx.TransportError as exc:
            raise transport_error(f"{self.platform} (token endpoint)", exc) from exc
        answer = _json(response)
        if response.is_success and answer is not None and "error" not in answer:
            return self._tokens(answer, response)
        raise self._failure(response, answer, what, hidden)

    def _tokens(self, answer: Mapping[str, Any], response: httpx.Response) -> Tokens:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise PermanentError(
                f"{self.platform}: the token endpoint answered without an access token "
                f"(HTTP {response.status_code})",
                http_status=response.status_code,
            )
        now = self._clock()
        expires_in = _seconds(answer.get("expires_in"))
        refresh_in = _seconds(
            answer.get("refresh_token_expires_in", answer.get("refresh_expires_in"))
        )
        refresh = answer.get("refresh_token")
        scope = answer.get("scope")
        return Tokens(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            expires_at=None if expires_in is None else now + expires_in,
            refresh_expires_at=None if refresh_in is None else now + refresh_in,
            scope=scope if isinstance(scope, str) and scope else None,
            extra={k: v for k, v in answer.items() if k not in ("access_token", "refresh_token")},
        )

    def _failure(
        self,
        response: httpx.Response,
        answer: Mapping[str, Any] | None,
        what: str,
        hidden: Iterable[str | None],
    ) -> PlatformError:
        status = response.status_code
        error = answer.get("error") if answer else None
        error = error if isinstance(error, str) and error else None
        detail = _scrub(_detail(answer, response), hidden)
        where = f"{self.platform}: the token endpoint refused the {what}"
        if status == 429:
            retry_after = retry_after_seconds(response.headers, reset_headers=self._reset_headers)
            return RateLimited(
                f"{where}: rate limited ({detail}, HTTP {status})",
                http_status=status,
                retry_after=retry_after,
            )
        if status >= 500 or status in RETRYABLE_STATUSES or error in _SERVER_TROUBLE:
            return TransientError(
                f"{where}: {detail} (HTTP {status}); trying again later",
                http_status=status,
                retry_after=retry_after_seconds(response.headers),
            )
        if error in _GRANT_REFUSED or self._grant_refused(error, _description(answer)):
            return NeedsAuth(
                f"{self.platform}: the {_platform_name(self.platform)} authorization is no longer "
                f"valid (it expired, was revoked or was already used: {detail}); connect the "
                "account again",
                http_status=status,
            )
        if error in _CLIENT_REFUSED or (status == 401 and error is None):
            return PermanentError(
                f"{where}: the app's credentials were not accepted ({detail}, HTTP {status}); "
                f"check {self.settings[0]} and {self.settings[1]} and the app's settings on "
                f"{_platform_name(self.platform)}",
                http_status=status,
            )
        if response.is_success and error is None:
            return TransientError(
                f"{where}: the answer could not be read (HTTP {status})", http_status=status
            )
        return PermanentError(f"{where}: {detail} (HTTP {status})", http_status=status)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _description(answer: Mapping[str, Any] | None) -> str:
    if not answer:
        return ""
    for key in ("error_description", "message"):
        value = answer.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _detail(answer: Mapping[str, Any] | None, response: httpx.Response) -> str:
    """The platform's own words: `error: error_description` (and TikTok's log_id)."""
    if answer is None:
        text = response.text.strip()
        return text[:_MAX_DETAIL] if text else (response.reason_phrase or "no answer")
    error = answer.get("error")
    parts = [p for p in (error if isinstance(error, str) else None, _description(answer)) if p]
    text = ": ".join(parts) or "no error description"
    log_id = answer.get("log_id")
    if isinstance(log_id, str) and log_id:
        text += f" (log_id {log_id})"
    return text[:_MAX_DETAIL]


def _scrub(text: str, hidden: Iterable[str | None]) -> str:
    """`text` with every secret Herald sent blanked out (a server may echo what it got)."""
    for secret in hidden:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
            text = text.replace(quote_plus(secret), "[redacted]")
    return text


def _seconds(value: Any) -> float | None:
    """A number of seconds from a JSON number or numeric string; None when there is none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


_NAMES = {"x": "X", "linkedin": "LinkedIn", "tiktok": "TikTok"}


def _platform_name(platform: str) -> str:
    return _NAMES.get(platform, platform)


# -- Authenticators ------------------------------------------------------------------------------


class _OAuth2Authenticator(Authenticator):
    """What the three flows share: configuration, refresh, credentials built and checked."""

    credentials_model: ClassVar[type[BaseModel]]

    def __init__(
        self, http: httpx.Client, oauth2: OAuth2Client, clock: Callable[[], float]
    ) -> None:
        self._http = http
        self._oauth2 = oauth2
        self._clock = clock

    @property
    def configured(self) -> bool:
        return self._oauth2.configured

    def _client_id(self) -> str:
        client_id = self._oauth2.client_id
        if client_id is None or not self.configured:
            raise self._oauth2.not_configured()
        return client_id

    def refresh(self, account: AccountRef) -> Refreshed:
        """Renews the access token with the refresh token (RFC 6749 §6).

        With no refresh token there is nothing to renew: the credentials come back unchanged
        until the access token expires, and NeedsAuth after (a person connects it again).
        """
        self._client_id()
        previous = dict(account.credentials)
        if not previous.get("access_token"):
            raise NeedsAuth(f"{self.platform}: the account has no access token; connect it again")
        now = self._clock()
        refresh_token = previous.get("refresh_token")
        if not refresh_token:
            return self._without_refresh_token(previous, now)
        refresh_expires_at = _number(previous.get("refresh_expires_at"))
        if refresh_expires_at is not None and refresh_expires_at <= now:
            raise NeedsAuth(
                f"{self.platform}: the {_platform_name(self.platform)} authorization expired on "
                f"{_when(refresh_expires_at)}; connect the account again"
            )
        tokens = self._oauth2.refresh(str(refresh_token))
        credentials = self._credentials(tokens, previous)
        return Refreshed(credentials=credentials, expires_at=tokens.expires_at)

    def _without_refresh_token(self, previous: dict[str, Any], now: float) -> Refreshed:
        expires_at = self.expires_at(previous)
        if expires_at is not None and expires_at <= now:
            raise NeedsAuth(
                f"{self.platform}: {_platform_name(self.platform)} gave no refresh token for "
                f"this account, and its access token expired on {_when(expires_at)}; connect "
                "the account again"
            )
        return Refreshed(credentials=previous, expires_at=expires_at)

    def _credentials(
        self, tokens: Tokens, previous: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The account's whole set of secrets after a grant, checked against its model.

        A refresh token or scope the answer leaves out is kept from before (RFC 6749 §6 and
        §5.1: the server may keep the refresh token, and omits scope when it is unchanged).
        """
        previous = previous or {}
        refresh_token = tokens.refresh_token or previous.get("refresh_token")
        refresh_expires_at = tokens.refresh_expires_at
        if refresh_expires_at is None and refresh_token == previous.get("refresh_token"):
            refresh_expires_at = _number(previous.get("refresh_expires_at"))
        values: dict[str, Any] = {
            "access_token": tokens.access_token,
            "refresh_token": refresh_token,
            "expires_at": tokens.expires_at,
            "refresh_expires_at": refresh_expires_at,
            "scope": tokens.scope or previous.get("scope"),
            **self._extra_credentials(tokens, previous),
        }
        credentials = {k: v for k, v in values.items() if v is not None}
        try:
            self.credentials_model.model_validate(credentials)
        except ValidationError as exc:
            # The values themselves stay out of the message: they are secrets.
            fields = ", ".join(sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()}))
            raise PermanentError(
                f"{self.platform}: the token endpoint's answer does not fit the account's "
                f"credentials ({fields})"
            ) from None
        return credentials

    def _extra_credentials(self, tokens: Tokens, previous: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def _get(self, url: str, token: str, *, reset_headers: tuple[str, ...] = ()) -> Any:
        """A GET with the user's token: its JSON body, or the error it maps to."""
        try:
            response = self._http.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError as exc:
            raise transport_error(self.platform, exc) from exc
        if not response.is_success:
            raise status_error(self.platform, response, reset_headers=reset_headers)
        try:
            return response.json()
        except ValueError:
            raise TransientError(
                f"{self.platform}: an unreadable answer from {httpx.URL(url).path} "
                f"(HTTP {response.status_code})",
                http_status=response.status_code,
            ) from None


class XAuthenticator(_OAuth2Authenticator):
    """X accounts: OAuth 2.0 Authorization Code Flow with PKCE, then GET /2/users/me.

    The connection's settings carry the user id (XSettings.user_id), so the adapter need not
    look it up; its handle is the @username. See the module docstring for what X documents.
    """

    platform = "x"
    uses_pkce = True
    credentials_model = XCredentials

    def __init__(
        self,
        client: httpx.Client,
        *,
        oauth: OAuthClient | None,
        api_url: str = DEFAULT_X_API_URL,
        authorize_url: str = DEFAULT_X_AUTHORIZE_URL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._authorize_url = authorize_url
        oauth2 = OAuth2Client(
            client,
            platform=self.platform,
            token_url=self._api_url + X_TOKEN_PATH,
            oauth=oauth,
            settings=("X_CLIENT_ID", "X_CLIENT_SECRET"),
            client_auth="basic",
            send_id_with_basic=True,
            grant_refused=_x_grant_refused,
            reset_headers=("x-rate-limit-reset",),
            clock=clock,
        )
        super().__init__(client, oauth2, clock)

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None = None
    ) -> str:
        if not code_challenge:
            raise ValueError("X requires PKCE: pass the S256 code challenge")
        return authorization_url(
            self._authorize_url,
            {
                "response_type": "code",
                "client_id": self._client_id(),
                "redirect_uri": redirect_uri,
                "scope": X_SCOPES,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            },
        )

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[Connection]:
        if not code_verifier:
            raise ValueError("X requires PKCE: pass the code verifier")
        self._client_id()
        tokens = self._oauth2.exchange(
            code=code, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        body = self._get(
            self._api_url + X_ME_PATH, tokens.access_token, reset_headers=("x-rate-limit-reset",)
        )
        user = body.get("data") if isinstance(body, dict) else None
        user_id = user.get("id") if isinstance(user, dict) else None
        username = user.get("username") if isinstance(user, dict) else None
        if not isinstance(user_id, str) or not isinstance(username, str) or not username:
            raise PermanentError("x: GET /2/users/me answered without the user's id and username")
        settings = {"user_id": user_id}
        try:
            XSettings.model_validate(settings)
        except ValidationError:
            raise PermanentError(
                f"x: GET /2/users/me gave an unexpected user id ({user_id!r})"
            ) from None
        return [
            Connection(
                handle=username,
                external_id=user_id,
                settings=settings,
                credentials=self._credentials(tokens),
                expires_at=tokens.expires_at,
            )
        ]


def _x_grant_refused(error: str | None, description: str) -> bool:
    """X's words for a code or refresh token it no longer accepts (see the module docstring)."""
    text = description.lower()
    return error == "invalid_request" and (
        "token was invalid" in text or "authorization code was invalid" in text
    )


class LinkedInAuthenticator(_OAuth2Authenticator):
    """LinkedIn members: the 3-legged authorization code flow, then OpenID Connect userinfo.

    The connection posts as the member (settings.author = urn:li:person:{sub}); its handle is
    the member's name. Apps without programmatic refresh tokens get none: their accounts must be
    connected again when the 60-day access token expires.
    """

    platform = "linkedin"
    uses_pkce = False
    credentials_model = LinkedInCredentials

    def __init__(
        self,
        client: httpx.Client,
        *,
        oauth: OAuthClient | None,
        oauth_url: str = DEFAULT_LINKEDIN_OAUTH_URL,
        api_url: str = DEFAULT_LINKEDIN_API_URL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._oauth_url = oauth_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        oauth2 = OAuth2Client(
            client,
            platform=self.platform,
            token_url=self._oauth_url + "/accessToken",
            oauth=oauth,
            settings=("LINKEDIN_CLIENT_ID", "LINKEDIN_CLIENT_SECRET"),
            client_auth="body",
            grant_refused=_linkedin_grant_refused,
            clock=clock,
        )
        super().__init__(client, oauth2, clock)

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None = None
    ) -> str:
        # No PKCE for LinkedIn web apps: a challenge handed in is not sent (nor its verifier).
        return authorization_url(
            self._oauth_url + "/authorization",
            {
                "response_type": "code",
                "client_id": self._client_id(),
                "redirect_uri": redirect_uri,
                "state": state,
                "scope": LINKEDIN_SCOPES,
            },
        )

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[Connection]:
        self._client_id()
        tokens = self._oauth2.exchange(code=code, redirect_uri=redirect_uri)
        info = self._get(self._api_url + LINKEDIN_USERINFO_PATH, tokens.access_token)
        sub = info.get("sub") if isinstance(info, dict) else None
        if not isinstance(sub, str) or not sub:
            raise PermanentError("linkedin: GET /v2/userinfo answered without the member's sub")
        settings = {"author": f"urn:li:person:{sub}"}
        try:
            LinkedInSettings.model_validate(settings)
        except ValidationError:
            raise PermanentError(
                f"linkedin: the member id from /v2/userinfo does not fit {AUTHOR_PATTERN}"
            ) from None
        name = info.get("name")
        if not isinstance(name, str) or not name.strip():
            given, family = info.get("given_name"), info.get("family_name")
            name = " ".join(p for p in (given, family) if isinstance(p, str) and p) or sub
        return [
            Connection(
                handle=name.strip(),
                external_id=sub,
                settings=settings,
                credentials=self._credentials(tokens),
                expires_at=tokens.expires_at,
            )
        ]


def _linkedin_grant_refused(error: str | None, description: str) -> bool:
    """LinkedIn's documented words for a code that is unknown, expired or does not match."""
    return error == "invalid_redirect_uri" or (
        error == "invalid_request" and "authorization code" in description.lower()
    )


class TikTokAuthenticator(_OAuth2Authenticator):
    """TikTok creators: Login Kit for Web, then user/info and creator_info.

    A newly connected account gets privacy_level "SELF_ONLY" (only the creator sees its posts):
    TikTokSettings has no default because TikTok's UX guidelines want the creator to choose, and
    the most private level is the only choice that exposes nothing the creator did not pick (and
    the only one an unaudited app may post with). The creator changes it in the account's
    settings.
    """

    platform = "tiktok"
    uses_pkce = False
    credentials_model = TikTokCredentials

    def __init__(
        self,
        client: httpx.Client,
        *,
        oauth: OAuthClient | None,
        api_url: str = DEFAULT_TIKTOK_API_URL,
        authorize_url: str = DEFAULT_TIKTOK_AUTHORIZE_URL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._authorize_url = authorize_url
        oauth2 = OAuth2Client(
            client,
            platform=self.platform,
            token_url=self._api_url + TIKTOK_TOKEN_PATH,
            oauth=oauth,
            settings=("TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET"),
            client_auth="body",
            id_param="client_key",
            clock=clock,
        )
        super().__init__(client, oauth2, clock)

    def authorize_url(
        self, *, state: str, redirect_uri: str, code_challenge: str | None = None
    ) -> str:
        # Login Kit for Web takes no PKCE challenge (see the module docstring).
        return authorization_url(
            self._authorize_url,
            {
                "client_key": self._client_id(),
                "scope": TIKTOK_SCOPES,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "state": state,
            },
        )

    def exchange(
        self, *, code: str, redirect_uri: str, code_verifier: str | None = None
    ) -> list[Connection]:
        self._client_id()
        tokens = self._oauth2.exchange(code=code, redirect_uri=redirect_uri)
        if tokens.scope is not None and "video.publish" not in _scopes(tokens.scope):
            raise NeedsAuth(
                "tiktok: the account was connected without allowing Herald to post "
                "(video.publish); connect it again and allow posting"
            )
        user = self._envelope_data(
            "GET", f"{TIKTOK_USER_INFO_PATH}?fields={TIKTOK_USER_FIELDS}", tokens.access_token
        ).get("user")
        creator = self._envelope_data("POST", TIKTOK_CREATOR_INFO_PATH, tokens.access_token)
        user = user if isinstance(user, dict) else {}
        open_id = user.get("open_id") or tokens.extra.get("open_id")
        if not isinstance(open_id, str) or not open_id:
            raise PermanentError("tiktok: neither the token nor user/info gave the open_id")
        handle = creator.get("creator_username") or user.get("display_name") or open_id
        settings = {"privacy_level": TIKTOK_DEFAULT_PRIVACY}
        TikTokSettings.model_validate(settings)
        return [
            Connection(
                handle=str(handle),
                external_id=open_id,
                settings=settings,
                credentials=self._credentials(tokens),
                expires_at=tokens.expires_at,
            )
        ]

    def _extra_credentials(self, tokens: Tokens, previous: Mapping[str, Any]) -> dict[str, Any]:
        open_id = tokens.extra.get("open_id")
        if not isinstance(open_id, str) or not open_id:
            open_id = previous.get("open_id")
        return {"open_id": open_id}

    def _envelope_data(self, method: str, path: str, token: str) -> dict[str, Any]:
        """The `data` of a TikTok API answer ({"data", "error": {"code", "message", "log_id"}})."""
        try:
            response = self._http.request(
                method, self._api_url + path, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            raise transport_error(self.platform, exc) from exc
        envelope = _json(response) or {}
        error = envelope.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        data = envelope.get("data")
        if response.is_success and code in (None, "ok") and isinstance(data, dict):
            return data
        if code in (None, "ok"):
            if response.is_success:
                raise TransientError(
                    f"tiktok: an unreadable answer from {path.partition('?')[0]} "
                    f"(HTTP {response.status_code})",
                    http_status=response.status_code,
                )
            raise status_error(self.platform, response)
        message = error.get("message") if isinstance(error, dict) else None
        log_id = error.get("log_id") if isinstance(error, dict) else None
        text = f"tiktok: {code}" + (f": {message}" if message else "")
        text += f" (HTTP {response.status_code}" + (f", log_id {log_id})" if log_id else ")")
        status = response.status_code
        if code in ("access_token_invalid", "scope_not_authorized", "scope_permission_missed"):
            return_error: PlatformError = NeedsAuth(text, http_status=status)
        elif code == "rate_limit_exceeded" or status == 429:
            return_error = RateLimited(
                text, http_status=status, retry_after=retry_after_seconds(response.headers)
            )
        elif code == "internal_error" or status >= 500 or status in RETRYABLE_STATUSES:
            return_error = TransientError(
                text, http_status=status, retry_after=retry_after_seconds(response.headers)
            )
        elif status == 401:
            return_error = NeedsAuth(text, http_status=status)
        else:
            return_error = PermanentError(text, http_status=status)
        raise return_error


def _scopes(scope: str) -> set[str]:
    """A granted scope list, comma- or space-separated (platforms differ)."""
    return {s for s in scope.replace(",", " ").split() if s}
