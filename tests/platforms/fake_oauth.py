"""A local OAuth 2.0 authorization server (RFC 6749 §4.1 and §6, RFC 7636) for the fakes.

`OAuthAuthority` keeps registered clients (secret, redirect URIs, how they authenticate), the
user who approves at the authorization endpoint, authorization codes (bound to the client, the
redirect URI, the user and the PKCE challenge; single use; short-lived), access tokens (with a
lifetime; can be expired or revoked now) and refresh tokens (rotated on use where the platform
rotates them). Every grant starts a token *family*: the tokens a code gave and every rotation
after it. Using a rotated refresh token again, or a code a second time, is refused
(`invalid_grant`) and revokes the whole family (RFC 6819 §5.2.2.3, OAuth 2.1 §4.3.1, RFC 6749
§4.1.2). `revoke_user` is the user removing the app. Counters say how many grants were asked for.

It serves two paths on any FakeServer: the authorization endpoint (GET: approves at once for
`approving_user` and answers 302 to the redirect URI with code and state; errors per §4.1.2.1,
a bad client or redirect URI is a 400, never a redirect) and the token endpoint (POST, form
encoded; errors per §5.2: 400 {error, error_description}, invalid_client 401 with
WWW-Authenticate when Basic was used). A `Dialect` says how one platform words these errors.

Mounted on a fake, the tokens it issues are written into the fake's `tokens` table, so the
fake's API accepts exactly the live ones:

    authority = x_authority(fake)  # or OAuthAuthority(token_path=...).mount(fake, live=...)
    authority.register_client("herald", "s3cret", ["https://herald.test/callback"])
    # x_authority made fake.user["id"] the approving user; set approving_user to change it.
    # GET  {fake.url}/i/oauth2/authorize?... → 302 https://herald.test/callback?code=...&state=...
    # POST {fake.url}/2/oauth2/token            → {"access_token", "refresh_token", ...}

Everything goes over HTTP, so Herald in another process can connect and refresh accounts
against a fake run by the test process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit, urlunsplit

from tests.platforms.servers import FakeServer, Recorded, Reply

_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

# -- what went wrong, and how each platform words it ---------------------------------------------

#: Why a token request is refused, independent of how a platform words it.
Refusal = Literal[
    "invalid_request",  # malformed: missing or repeated parameter, wrong content type
    "invalid_client",  # unknown client, wrong secret, no client authentication
    "unauthorized_client",  # the client may not use this grant or authentication method
    "unsupported_grant_type",
    "invalid_scope",
    "code_unknown",  # no such code
    "code_spent",  # used before, or expired
    "code_mismatch",  # other client, other redirect_uri, wrong or missing code_verifier
    "refresh_invalid",  # unknown, expired, rotated or revoked refresh token
]


@dataclass(frozen=True)
class Dialect:
    """How one platform's authorization server answers: fields, separators, error bodies."""

    name: str = "rfc6749"
    #: The client-id parameter (TikTok: "client_key").
    client_id_param: str = "client_id"
    #: How the granted scope is listed in token answers.
    scope_separator: str = " "
    token_type: str = "Bearer"
    #: The field that tells how long the refresh token has left (None: not told).
    refresh_ttl_field: str | None = None
    #: Token answers carry the user's open_id (TikTok).
    open_id: bool = False
    #: Error bodies carry a log_id (TikTok).
    log_id: bool = False
    #: The HTTP status of grant errors (RFC 6749: 400). TikTok does not document its own.
    error_status: int = 400
    token_prefix: tuple[str, str] = ("at", "rt")

    def refuse(self, refusal: Refusal, description: str, *, basic: bool) -> tuple[int, str, str]:
        """(HTTP status, error, error_description) for a refusal, as RFC 6749 §5.2 has it."""
        error = {
            "code_unknown": "invalid_grant",
            "code_spent": "invalid_grant",
            "code_mismatch": "invalid_grant",
            "refresh_invalid": "invalid_grant",
        }.get(refusal, refusal)
        status = 401 if refusal == "invalid_client" else self.error_status
        return status, error, description


@dataclass(frozen=True)
class XDialect(Dialect):
    """X as seen in practice (its error bodies are not documented)."""

    name: str = "x"
    token_type: str = "bearer"

    def refuse(self, refusal: Refusal, description: str, *, basic: bool) -> tuple[int, str, str]:
        if refusal in ("code_unknown", "code_spent", "code_mismatch"):
            return 400, "invalid_request", "Value passed for the authorization code was invalid."
        if refusal == "refresh_invalid":
            return 400, "invalid_request", "Value passed for the token was invalid."
        if refusal == "invalid_client":
            return 401, "unauthorized_client", "Missing valid authorization header"
        return super().refuse(refusal, description, basic=basic)


_LINKEDIN_CODE_MISMATCH = (
    "Unable to retrieve access token: appid/redirect uri/code verifier does not match "
    "authorization code. Or authorization code expired. Or external member binding exists"
)


@dataclass(frozen=True)
class LinkedInDialect(Dialect):
    """LinkedIn's documented accessToken errors (authorization-code-flow, "API Error Details")."""

    name: str = "linkedin"
    scope_separator: str = ","
    refresh_ttl_field: str | None = "refresh_token_expires_in"
    token_prefix: tuple[str, str] = ("AQV", "AQX")

    def refuse(self, refusal: Refusal, description: str, *, basic: bool) -> tuple[int, str, str]:
        if refusal == "code_unknown":
            return (
                401,
                "invalid_request",
                "Unable to retrieve access token: authorization code not found",
            )
        if refusal in ("code_spent", "code_mismatch"):
            return 400, "invalid_redirect_uri", _LINKEDIN_CODE_MISMATCH
        return super().refuse(refusal, description, basic=basic)


@dataclass(frozen=True)
class TikTokDialect(Dialect):
    """TikTok's {"error", "error_description", "log_id"} (developers.tiktok.com/doc/oauth-error-handling)."""

    name: str = "tiktok"
    client_id_param: str = "client_key"
    scope_separator: str = ","
    refresh_ttl_field: str | None = "refresh_expires_in"
    open_id: bool = True
    log_id: bool = True
    token_prefix: tuple[str, str] = ("act.", "rft.")


RFC6749 = Dialect()

# -- state ---------------------------------------------------------------------------------------


@dataclass
class RegisteredClient:
    client_id: str
    secret: str | None  # None: a public client
    redirect_uris: tuple[str, ...]
    #: How a confidential client must authenticate at the token endpoint.
    auth_method: Literal["basic", "body", "any"] = "any"
    #: The scopes it may ask for (None: any).
    scopes: frozenset[str] | None = None


@dataclass
class _Code:
    value: str
    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    user: str
    scope: tuple[str, ...]
    challenge: str | None
    method: str | None
    issued_at: float
    used: bool = False
    family: int | None = None


@dataclass
class _Family:
    id: int
    client_id: str
    user: str
    scope: tuple[str, ...]
    started_at: float
    revoked: bool = False
    access: list[str] = field(default_factory=list)
    refresh: list[str] = field(default_factory=list)


@dataclass
class _Access:
    value: str
    family: int
    expires_at: float
    expired: bool = False  # expired on purpose, before its time
    revoked: bool = False


@dataclass
class _Refresh:
    value: str
    family: int
    expires_at: float | None
    rotated: bool = False
    revoked: bool = False


class _LiveTokens(dict):
    """A fake's token table whose authority-issued tokens expire on the authority's clock."""

    def __init__(self, authority: OAuthAuthority, initial: MutableMapping[str, Any]) -> None:
        super().__init__(initial)
        self._authority = authority

    def get(self, key: Any, default: Any = None) -> Any:
        self._authority._settle(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self._authority._settle(key)
        return super().__getitem__(key)


class OAuthAuthority:
    """Clients, users, codes and tokens, served at `authorize_path` and `token_path`."""

    def __init__(
        self,
        *,
        token_path: str,
        authorize_path: str | None = None,
        dialect: Dialect = RFC6749,
        access_lifetime: float = 3600.0,
        refresh_lifetime: float | None = None,
        code_lifetime: float = 600.0,
        rotate_refresh_tokens: bool = True,
        issue_refresh_tokens: bool = True,
        refresh_scope: str | None = None,
        require_pkce: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_path = token_path
        self.authorize_path = authorize_path
        self.dialect = dialect
        self.access_lifetime = access_lifetime
        #: Refresh tokens live this long from the first grant of their family (None: forever).
        self.refresh_lifetime = refresh_lifetime
        self.code_lifetime = code_lifetime
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.issue_refresh_tokens = issue_refresh_tokens
        #: Refresh tokens only for grants with this scope (X: "offline.access"); None: always.
        self.refresh_scope = refresh_scope
        self.require_pkce = require_pkce
        self.clock = clock
        self.clients: dict[str, RegisteredClient] = {}
        #: Who approves at the authorization endpoint (None: the user denies: access_denied).
        self.approving_user: str | None = None
        #: Scopes the user grants when asked for more (None: all that were asked for).
        self.consent_scopes: set[str] | None = None
        #: Every request per grant type, and every grant made.
        self.counts: Counter[str] = Counter()
        self._codes: dict[str, _Code] = {}
        self._families: dict[int, _Family] = {}
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._family_ids = itertools.count(1)
        self._log_ids = itertools.count(1)
        self._lock = threading.RLock()
        self._tables: list[tuple[_LiveTokens, Any, Any, Any]] = []

    # -- setup ----------------------------------------------------------------------------------

    def register_client(
        self,
        client_id: str,
        secret: str | None,
        redirect_uris: Iterable[str],
        *,
        auth_method: Literal["basic", "body", "any"] = "any",
        scopes: Iterable[str] | None = None,
    ) -> RegisteredClient:
        client = RegisteredClient(
            client_id,
            secret,
            tuple(redirect_uris),
            auth_method,
            None if scopes is None else frozenset(scopes),
        )
        with self._lock:
            self.clients[client_id] = client
        return client

    def mount(
        self,
        fake: FakeServer,
        *,
        live: Any,
        expired: Any,
        revoked: Any = None,
    ) -> OAuthAuthority:
        """Serve on `fake` (its `oauth` hook) and keep its `tokens` table in step.

        Live access tokens are entered as `live`, expired ones as `expired`, revoked ones as
        `revoked` (None: removed, so the API calls them unknown).
        """
        table = _LiveTokens(self, fake.tokens)  # type: ignore[attr-defined]
        fake.tokens = table  # type: ignore[attr-defined]
        fake.oauth = self  # type: ignore[attr-defined]
        with self._lock:
            self._tables.append((table, live, expired, revoked))
        return self

    # -- what tests look at and do --------------------------------------------------------------

    @property
    def refresh_calls(self) -> int:
        """Refresh-grant requests received (granted or not)."""
        return self.counts["refresh_token"]

    @property
    def code_exchanges(self) -> int:
        """Authorization-code requests received (granted or not)."""
        return self.counts["authorization_code"]

    def live_access_tokens(self, user: str | None = None) -> list[str]:
        with self._lock:
            return [
                a.value
                for a in self._access.values()
                if self._access_live(a) and (user is None or self._families[a.family].user == user)
            ]

    def live_refresh_tokens(self, user: str | None = None) -> list[str]:
        with self._lock:
            return [
                r.value
                for r in self._refresh.values()
                if self._refresh_live(r) and (user is None or self._families[r.family].user == user)
            ]

    def expire_access_token(self, token: str | None = None) -> None:
        """Expire one access token now (None: every live one)."""
        with self._lock:
            for access in self._access.values():
                if token is None or access.value == token:
                    access.expired = True
                    self._publish(access)

    def expire_refresh_token(self, token: str | None = None) -> None:
        """Expire one refresh token now (None: every one)."""
        with self._lock:
            for refresh in self._refresh.values():
                if token is None or refresh.value == token:
                    refresh.expires_at = self.clock() - 1

    def revoke_user(self, user: str) -> None:
        """The user removes the app: every token of theirs stops working."""
        with self._lock:
            for family in self._families.values():
                if family.user == user:
                    self._revoke_family(family)

    def grant(self, client_id: str, user: str, scope: Iterable[str] = ()) -> dict[str, Any]:
        """Tokens for `user` as if they had just connected (a token answer), without HTTP."""
        with self._lock:
            family = self._new_family(client_id, user, tuple(scope))
            return self._issue(family, new_refresh=True)

    # -- HTTP -----------------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply | None:
        """The answer for a request to one of the authority's paths, None for any other."""
        if request.path == self.token_path:
            with self._lock:
                return self._token(request)
        if self.authorize_path is not None and request.path == self.authorize_path:
            with self._lock:
                return self._authorize(request)
        return None

    # -- the authorization endpoint (RFC 6749 §4.1.1–4.1.2) ------------------------------------

    def _authorize(self, request: Recorded) -> Reply:
        self.counts["authorize"] += 1
        if request.method != "GET":
            return Reply(405, {"error": "invalid_request", "error_description": "use GET"})
        params, repeated = _single(request.query)
        client_id = params.get(self.dialect.client_id_param)
        client = self.clients.get(client_id or "")
        if client is None:
            return Reply(400, {"error": "invalid_request", "error_description": "unknown client"})
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None and len(client.redirect_uris) == 1:
            redirect_uri = client.redirect_uris[0]
        if redirect_uri is None or redirect_uri not in client.redirect_uris:
            # §4.1.2.1: never redirect to a URI that is not registered.
            return Reply(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "redirect_uri is missing or not registered",
                },
            )
        state = params.get("state")

        def back(**answer: str) -> Reply:
            if state is not None:
                answer["state"] = state
            return Reply(302, None, {"Location": _with_query(redirect_uri, answer)})

        if repeated:
            return back(error="invalid_request", error_description=f"{repeated} repeated")
        if params.get("response_type") != "code":
            return back(error="unsupported_response_type", error_description="only code")
        requested = _split_scope(params.get("scope", ""))
        if client.scopes is not None and not set(requested) <= client.scopes:
            return back(error="invalid_scope", error_description="scope not allowed")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None and (self.require_pkce or method is not None):
            return back(error="invalid_request", error_description="code_challenge is required")
        if challenge is not None:
            method = method or "plain"  # RFC 7636 §4.3
            if method not in ("S256", "plain"):
                return back(
                    error="invalid_request", error_description="unsupported challenge method"
                )
            if not _VERIFIER.fullmatch(challenge):
                return back(error="invalid_request", error_description="bad code_challenge")
        if self.approving_user is None:
            return back(error="access_denied", error_description="the user denied the request")
        granted = tuple(
            s for s in requested if self.consent_scopes is None or s in self.consent_scopes
        )
        code = _Code(
            value=secrets.token_urlsafe(24),
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            redirect_uri_given="redirect_uri" in params,
            user=self.approving_user,
            scope=granted,
            challenge=challenge,
            method=method if challenge is not None else None,
            issued_at=self.clock(),
        )
        self._codes[code.value] = code
        return back(code=code.value)

    # -- the token endpoint (RFC 6749 §4.1.3, §6, §5) ------------------------------------------

    def _token(self, request: Recorded) -> Reply:
        grant_type = None
        try:
            if request.method != "POST":
                return self._refuse("invalid_request", "the token endpoint takes POST")
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type != "application/x-www-form-urlencoded":
                return self._refuse("invalid_request", "the body must be form-encoded")
            params, repeated = _single(parse_qs(request.body.decode(), keep_blank_values=True))
            grant_type = params.get("grant_type")
            self.counts[grant_type or "none"] += 1
            if repeated:
                return self._refuse("invalid_request", f"{repeated} is repeated")
            client, refused = self._authenticate(request, params)
            if refused is not None:
                return refused
            assert client is not None
            if grant_type == "authorization_code":
                return self._exchange(client, params)
            if grant_type == "refresh_token":
                return self._refresh_grant(client, params)
            if grant_type is None:
                return self._refuse("invalid_request", "grant_type is missing")
            return self._refuse("unsupported_grant_type", f"{grant_type} is not supported")
        finally:
            self.counts["requests"] += 1

    def _authenticate(
        self, request: Recorded, params: dict[str, str]
    ) -> tuple[RegisteredClient | None, Reply | None]:
        """The client, authenticated per RFC 6749 §2.3.1 (Basic, or secret in the body)."""
        header = request.headers.get("authorization", "")
        basic = header.lower().startswith("basic ")
        body_id = params.get(self.dialect.client_id_param)
        body_secret = params.get("client_secret")
        secret: str | None
        if basic and body_secret is not None:
            return None, self._refuse(
                "invalid_request", "more than one client authentication method", basic=True
            )
        if basic:
            try:
                pair = base64.b64decode(header[6:].strip(), validate=True).decode()
                raw_id, _, raw_secret = pair.partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None, self._refuse("invalid_client", "malformed Basic", basic=True)
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
            if body_id is not None and body_id != client_id:
                return None, self._refuse("invalid_request", "client_id mismatch", basic=True)
        else:
            client_id, secret = body_id or "", body_secret
        client = self.clients.get(client_id)
        if client is None:
            return None, self._refuse("invalid_client", "unknown client", basic=basic)
        if client.secret is None:
            if secret:
                return None, self._refuse("invalid_client", "a public client has no secret")
            return client, None
        if secret is None or not secrets.compare_digest(secret, client.secret):
            return None, self._refuse("invalid_client", "client authentication failed", basic=basic)
        method = "basic" if basic else "body"
        if client.auth_method not in ("any", method):
            return None, self._refuse(
                "invalid_client", f"this client must authenticate with {client.auth_method}"
            )
        return client, None

    def _exchange(self, client: RegisteredClient, params: dict[str, str]) -> Reply:
        value = params.get("code")
        if not value:
            return self._refuse("invalid_request", "code is missing")
        code = self._codes.get(value)
        if code is None:
            return self._refuse("code_unknown", "the authorization code is not known")
        if code.used:
            # §4.1.2: a code used twice revokes what it was exchanged for.
            family = self._families.get(code.family or -1)
            if family is not None:
                self._revoke_family(family)
            return self._refuse("code_spent", "the authorization code was already used")
        if self.clock() > code.issued_at + self.code_lifetime:
            return self._refuse("code_spent", "the authorization code expired")
        if code.client_id != client.client_id:
            return self._refuse("code_mismatch", "the code was issued to another client")
        redirect_uri = params.get("redirect_uri")
        if (code.redirect_uri_given or redirect_uri is not None) and (
            redirect_uri != code.redirect_uri
        ):
            return self._refuse("code_mismatch", "redirect_uri does not match")
        verifier = params.get("code_verifier")
        if code.challenge is None and verifier is not None:
            return self._refuse("code_mismatch", "no code_challenge was given for this code")
        if code.challenge is not None:
            if verifier is None:
                return self._refuse("code_mismatch", "code_verifier is missing")
            if not _VERIFIER.fullmatch(verifier):
                return self._refuse("invalid_request", "code_verifier is malformed")
            if not secrets.compare_digest(_challenge(verifier, code.method), code.challenge):
                return self._refuse("code_mismatch", "code_verifier does not match")
        code.used = True
        family = self._new_family(client.client_id, code.user, code.scope)
        code.family = family.id
        self.counts["codes_granted"] += 1
        return self._answer(self._issue(family, new_refresh=True))

    def _refresh_grant(self, client: RegisteredClient, params: dict[str, str]) -> Reply:
        value = params.get("refresh_token")
        if not value:
            return self._refuse("invalid_request", "refresh_token is missing")
        refresh = self._refresh.get(value)
        if refresh is None:
            return self._refuse("refresh_invalid", "the refresh token is not known")
        family = self._families[refresh.family]
        if family.client_id != client.client_id:
            return self._refuse("refresh_invalid", "the refresh token belongs to another client")
        if refresh.rotated and not refresh.revoked:
            # Reuse of a rotated token: someone else may hold the family. Revoke all of it.
            self._revoke_family(family)
            self.counts["reuse_detected"] += 1
            return self._refuse("refresh_invalid", "the refresh token was already used")
        if not self._refresh_live(refresh):
            return self._refuse("refresh_invalid", "the refresh token is expired or revoked")
        asked = params.get("scope")
        if asked is not None and not set(_split_scope(asked)) <= set(family.scope):
            return self._refuse("invalid_scope", "a refresh cannot widen the scope")
        if self.rotate_refresh_tokens:
            refresh.rotated = True
        self.counts["refreshes_granted"] += 1
        return self._answer(
            self._issue(family, new_refresh=self.rotate_refresh_tokens, current=refresh)
        )

    # -- grants ---------------------------------------------------------------------------------

    def _new_family(self, client_id: str, user: str, scope: tuple[str, ...]) -> _Family:
        family = _Family(next(self._family_ids), client_id, user, scope, self.clock())
        self._families[family.id] = family
        return family

    def _issue(
        self, family: _Family, *, new_refresh: bool, current: _Refresh | None = None
    ) -> dict[str, Any]:
        now = self.clock()
        at_prefix, rt_prefix = self.dialect.token_prefix
        access = _Access(
            at_prefix + secrets.token_urlsafe(24), family.id, now + self.access_lifetime
        )
        self._access[access.value] = access
        family.access.append(access.value)
        self._publish(access)
        answer: dict[str, Any] = {
            "access_token": access.value,
            "token_type": self.dialect.token_type,
            "expires_in": int(self.access_lifetime),
            "scope": self.dialect.scope_separator.join(family.scope),
        }
        refresh = current
        gives_refresh = self.issue_refresh_tokens and (
            self.refresh_scope is None or self.refresh_scope in family.scope
        )
        if gives_refresh and (new_refresh or current is None):
            expires_at = (
                None if self.refresh_lifetime is None else family.started_at + self.refresh_lifetime
            )
            refresh = _Refresh(rt_prefix + secrets.token_urlsafe(32), family.id, expires_at)
            self._refresh[refresh.value] = refresh
            family.refresh.append(refresh.value)
        if gives_refresh and refresh is not None:
            answer["refresh_token"] = refresh.value
            if self.dialect.refresh_ttl_field and refresh.expires_at is not None:
                answer[self.dialect.refresh_ttl_field] = max(int(refresh.expires_at - now), 0)
        if self.dialect.open_id:
            answer["open_id"] = family.user
        return answer

    def _revoke_family(self, family: _Family) -> None:
        family.revoked = True
        for value in family.access:
            self._access[value].revoked = True
            self._publish(self._access[value])
        for value in family.refresh:
            self._refresh[value].revoked = True

    def _access_live(self, access: _Access) -> bool:
        return not (access.revoked or access.expired or self.clock() >= access.expires_at)

    def _refresh_live(self, refresh: _Refresh) -> bool:
        if refresh.revoked or refresh.rotated:
            return False
        return refresh.expires_at is None or self.clock() < refresh.expires_at

    def _settle(self, token: Any) -> None:
        """Bring one token's entry in the fakes' tables up to date with the clock."""
        with self._lock:
            access = self._access.get(token) if isinstance(token, str) else None
            if access is not None:
                self._publish(access)

    def _publish(self, access: _Access) -> None:
        for table, live, expired, revoked in self._tables:
            if access.revoked:
                state = revoked
            elif self._access_live(access):
                state = live
            else:
                state = expired
            if state is None:
                dict.pop(table, access.value, None)
            else:
                dict.__setitem__(table, access.value, state)

    # -- answers --------------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> Reply:
        # RFC 6749 §5.1: token answers must not be cached.
        return Reply(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _refuse(self, refusal: Refusal, description: str, *, basic: bool = False) -> Reply:
        self.counts["refused"] += 1
        status, error, text = self.dialect.refuse(refusal, description, basic=basic)
        body: dict[str, Any] = {"error": error, "error_description": text}
        if self.dialect.log_id:
            body["log_id"] = f"2026{next(self._log_ids):016d}"
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if status == 401 and basic:
            headers["WWW-Authenticate"] = 'Basic realm="oauth", charset="UTF-8"'
        return Reply(status, body, headers)


def _single(query: dict[str, list[str]]) -> tuple[dict[str, str], str | None]:
    """One value per parameter, and the first parameter given more than once (RFC 6749 §3.1)."""
    repeated = next((k for k, v in query.items() if len(v) > 1), None)
    return {k: v[0] for k, v in query.items()}, repeated


def _split_scope(scope: str) -> tuple[str, ...]:
    """A requested scope list; RFC 6749 separates with spaces, TikTok and LinkedIn with commas."""
    return tuple(dict.fromkeys(s for s in scope.replace(",", " ").split() if s))


def _challenge(verifier: str, method: str | None) -> str:
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier


def _with_query(uri: str, params: dict[str, str]) -> str:
    """`uri` with `params` added to the query it may already have (RFC 6749 §4.1.2)."""
    parts = urlsplit(uri)
    query = "&".join(p for p in (parts.query, urlencode(params)) if p)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redirect_params(location: str) -> dict[str, str]:
    """The parameters of a redirect back to the client (code, state, or error)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


# -- the three platforms --------------------------------------------------------------------------


def x_authority(
    fake: FakeServer, *, dialect: Dialect | None = None, **options: Any
) -> OAuthAuthority:
    """X's authorization server on a FakeX: /i/oauth2/authorize and /2/oauth2/token.

    PKCE is required; access tokens last 2 hours; refresh tokens come only with offline.access,
    and rotate; codes last 30 seconds.
    """
    settings: dict[str, Any] = {
        "access_lifetime": 7200.0,
        "code_lifetime": 30.0,
        "require_pkce": True,
        "refresh_scope": "offline.access",
    } | options
    authority = OAuthAuthority(
        token_path="/2/oauth2/token",
        authorize_path="/i/oauth2/authorize",
        dialect=dialect or XDialect(),
        **settings,
    )
    authority.approving_user = fake.user["id"]  # type: ignore[attr-defined]
    return authority.mount(fake, live="valid", expired="expired")


def linkedin_authority(
    fake: FakeServer, *, dialect: Dialect | None = None, **options: Any
) -> OAuthAuthority:
    """LinkedIn's on a FakeLinkedIn: /oauth/v2/authorization and /oauth/v2/accessToken.

    Access tokens last 60 days; refresh tokens (MDP partners only: `issue_refresh_tokens`) last
    365 days from the first grant and are not rotated; codes last 30 minutes.
    """
    settings: dict[str, Any] = {
        "access_lifetime": 60 * 86400.0,
        "refresh_lifetime": 365 * 86400.0,
        "code_lifetime": 1800.0,
        "rotate_refresh_tokens": False,
    } | options
    authority = OAuthAuthority(
        token_path="/oauth/v2/accessToken",
        authorize_path="/oauth/v2/authorization",
        dialect=dialect or LinkedInDialect(),
        **settings,
    )
    authority.approving_user = fake.member["sub"]  # type: ignore[attr-defined]
    return authority.mount(fake, live="valid", expired="expired", revoked="revoked")


def tiktok_authority(
    fake: FakeServer, *, dialect: Dialect | None = None, **options: Any
) -> OAuthAuthority:
    """TikTok's on a FakeTikTok: /v2/auth/authorize/ and /v2/oauth/token/.

    Access tokens last 24 hours and refresh tokens 365 days from the first grant (the figures
    of developers.tiktok.com/doc/oauth-user-access-token-management); refresh tokens rotate.
    """
    settings: dict[str, Any] = {
        "access_lifetime": 86400.0,
        "refresh_lifetime": 365 * 86400.0,
    } | options
    authority = OAuthAuthority(
        token_path="/v2/oauth/token/",
        authorize_path="/v2/auth/authorize/",
        dialect=dialect or TikTokDialect(),
        **settings,
    )
    authority.approving_user = fake.user["open_id"]  # type: ignore[attr-defined]
    return authority.mount(fake, live="ok", expired="expired")
