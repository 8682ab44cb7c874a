"""Accounts connected with credentials handed in directly: Bluesky and Mastodon.

Both are `flow = "direct"` Authenticators: `connect` checks what the person typed against the
platform before Herald keeps it, and `refresh` renews (Bluesky) or checks (Mastodon) it.
Their URLs (a PDS, an instance) come from users, so they are called through the shared client,
which refuses private addresses in production.

Bluesky
-------
What the documentation says, and how it is used:

* com.atproto.server.createSession {identifier, password} → {accessJwt, refreshJwt, handle,
  did, …} (https://docs.bsky.app/docs/api/com-atproto-server-create-session). `connect` takes
  the handle and an app password (https://bsky.app/settings/app-passwords), signs in, and keeps
  the app password with the session: the handle stored is the one the PDS answers, the
  external id the DID.
* com.atproto.server.refreshSession "Requires auth using the 'refreshJwt' (not the
  'accessJwt')" (https://docs.bsky.app/docs/api/com-atproto-server-refresh-session) and
  answers a new session, with a new refreshJwt: the old one is spent (rotation). The PDS
  refuses a spent, expired or revoked refresh token with 400 ExpiredToken / InvalidToken (401
  at the entryway). `refresh` then falls back to createSession with the stored app password;
  when that is refused too (400/401: AuthenticationRequired "Invalid identifier or password"
  after the app password was revoked, AccountTakedown, …) the person must connect again:
  NeedsAuth, with the PDS's words.
* createSession is limited to 30 per 5 minutes and 300 per day per account
  (https://docs.bsky.app/docs/advanced-guides/rate-limits), which is why refreshSession comes
  first. 429 and 5xx are TransientErrors (retry_after from Retry-After or RateLimit-Reset).
* The tokens are JWTs; the access token's `exp` claim is when it expires, read without
  verifying the signature (Herald is not the audience, only the holder), for `expires_at`.

Mastodon
--------
* GET /api/v1/accounts/verify_credentials
  (https://docs.joinmastodon.org/methods/accounts/#verify_credentials) answers the token's
  account (`id`, `username`, `acct`); 401 with `{"error": "The access token is invalid"}` (or
  "… was revoked") when the token is not accepted, 403 when the account may not sign in
  ("Your login is currently disabled") or the token lacks the scope. The handle is
  `@{acct}@{instance host}`.
* Tokens do not expire (https://docs.joinmastodon.org/api/oauth-tokens/: an access token is
  valid until revoked), so `refresh` only checks the token: 401/403 → NeedsAuth, 5xx/429 and
  network failures → TransientError, a working token → the credentials unchanged.

What the documentation leaves unclear
-------------------------------------
* Whether every PDS accepts a DID as the createSession identifier; the stored handle is used,
  as the publishing adapter does, so a handle changed elsewhere makes the fallback fail
  (NeedsAuth: connect again).
* The status a PDS gives a refused createSession: 401 on Bluesky's PDS and entryway, 400 on
  some others; both mean "connect again".
* A Mastodon account's handle domain: instances may serve the web UI on one domain and name
  accounts on another (LOCAL_DOMAIN ≠ WEB_DOMAIN); verify_credentials does not say which, so the
  instance URL's host is used.
* Which 403 bodies are a missing scope rather than a disabled login; both need a person.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from herald_common.errors import FieldError, InvalidInput, NeedsAuth, PermanentError
from herald_common.platforms.auth import Authenticator, Connection, Refreshed
from herald_common.platforms.base import AccountRef
from herald_common.platforms.bluesky import (
    DEFAULT_SERVICE,
    RESET_HEADERS,
    BlueskyCredentials,
    BlueskySettings,
    is_auth_failure,
    xrpc_message,
)
from herald_common.platforms.http import status_error, transport_error
from herald_common.platforms.mastodon import MastodonCredentials, MastodonSettings

_MASTODON_RESET_HEADERS = ("x-ratelimit-reset",)


def jwt_expiry(token: str | None) -> float | None:
    """The `exp` claim of a JWT (epoch seconds), read without verifying it; None if absent."""
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, Mapping) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


def _base_url(value: Any, field: str) -> str:
    """A server URL as typed: scheme added when missing (https), no trailing slash."""
    text = str(value or "").strip()
    if not text:
        raise InvalidInput(FieldError(field, "is required"))
    if "://" not in text:
        text = f"https://{text}"
    return text.rstrip("/")


def _fields_valid(model: type[BaseModel], values: Mapping[str, Any]) -> None:
    try:
        model.model_validate(dict(values))
    except ValidationError as exc:
        raise InvalidInput(
            [
                FieldError(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg")))
                for e in exc.errors()
            ]
        ) from None


# -- Bluesky --------------------------------------------------------------------------------


class BlueskyAuthenticator(Authenticator):
    """A Bluesky account from its handle and an app password; sessions renewed on its PDS."""

    platform = "bluesky"
    flow = "direct"

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def connect(self, values: Mapping[str, Any]) -> Connection:
        handle = str(values.get("handle") or "").strip().removeprefix("@")
        password = str(values.get("app_password") or "").strip()
        missing = [
            FieldError(name, "is required")
            for name, value in (("handle", handle), ("app_password", password))
            if not value
        ]
        if missing:
            raise InvalidInput(missing)
        service = _base_url(values.get("service_url") or DEFAULT_SERVICE, "service_url")
        settings = {} if service == DEFAULT_SERVICE else {"service_url": service}
        _fields_valid(BlueskySettings, settings)
        response = self._post(
            service,
            "com.atproto.server.createSession",
            json={"identifier": handle, "password": password},
        )
        if response.status_code in (400, 401):
            raise InvalidInput(
                FieldError(
                    "app_password",
                    f"the server refused to sign in as {handle}: {xrpc_message(response)}",
                )
            )
        if response.status_code != 200:
            raise self._error(response)
        session = self._session(response, password)
        _fields_valid(BlueskyCredentials, session)
        body = response.json()
        return Connection(
            handle=str(body.get("handle") or handle),
            external_id=session["did"],
            settings=settings,
            credentials=session,
            expires_at=jwt_expiry(session["accessJwt"]),
        )

    def refresh(self, account: AccountRef) -> Refreshed:
        credentials = account.credentials
        password = credentials.get("app_password")
        if not password:
            raise NeedsAuth("bluesky: the account has no app password; connect it again")
        service = str(account.settings.get("service_url") or DEFAULT_SERVICE).rstrip("/")
        refresh_jwt = credentials.get("refreshJwt")
        if refresh_jwt:
            response = self._post(
                service,
                "com.atproto.server.refreshSession",
                headers={"Authorization": f"Bearer {refresh_jwt}"},
            )
            if response.status_code == 200:
                return self._refreshed(response, password)
            if not (is_auth_failure(response) or response.status_code == 400):
                raise self._error(response)
            # Spent, expired or revoked: sign in again with the app password.
        response = self._post(
            service,
            "com.atproto.server.createSession",
            json={"identifier": account.handle, "password": password},
        )
        if response.status_code == 200:
            return self._refreshed(response, password)
        if response.status_code in (400, 401):
            raise NeedsAuth(
                f"bluesky: signing in with the stored app password failed "
                f"({xrpc_message(response)}); the app password may have been revoked: create "
                "a new one and connect the account again",
                http_status=response.status_code,
            )
        raise self._error(response)

    def expires_at(self, credentials: Mapping[str, Any]) -> float | None:
        return jwt_expiry(credentials.get("accessJwt"))

    # -- helpers ----------------------------------------------------------------------------

    def _refreshed(self, response: httpx.Response, password: str) -> Refreshed:
        session = self._session(response, password)
        return Refreshed(credentials=session, expires_at=jwt_expiry(session["accessJwt"]))

    def _session(self, response: httpx.Response, password: str) -> dict[str, str]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, Mapping):
            raise PermanentError("bluesky: the server's session answer is not a JSON object")
        names = ("accessJwt", "refreshJwt", "did")
        if not all(isinstance(body.get(k), str) and body.get(k) for k in names):
            raise PermanentError(
                "bluesky: the server's session answer lacks accessJwt, refreshJwt or did"
            )
        return {"app_password": password, **{k: str(body[k]) for k in names}}

    def _post(self, service: str, method: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.post(f"{service}/xrpc/{method}", **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(self.platform, exc) from exc

    def _error(self, response: httpx.Response) -> Exception:
        return status_error(self.platform, response, reset_headers=RESET_HEADERS)


# -- Mastodon -------------------------------------------------------------------------------


class MastodonAuthenticator(Authenticator):
    """A Mastodon account from its instance and an access token; tokens do not expire."""

    platform = "mastodon"
    flow = "direct"

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def connect(self, values: Mapping[str, Any]) -> Connection:
        instance = _base_url(values.get("instance_url"), "instance_url")
        token = str(values.get("access_token") or "").strip()
        if not token:
            raise InvalidInput(FieldError("access_token", "is required"))
        settings = {"instance_url": instance}
        _fields_valid(MastodonSettings, settings)
        credentials = {"access_token": token}
        _fields_valid(MastodonCredentials, credentials)
        response = self._verify(instance, token)
        if response.status_code in (401, 403):
            raise InvalidInput(
                FieldError(
                    "access_token", f"{instance} refused the token: {_mastodon_error(response)}"
                )
            )
        if response.status_code == 404:
            raise InvalidInput(
                FieldError("instance_url", f"{instance} does not answer like a Mastodon server")
            )
        if response.status_code != 200:
            raise self._error(response)
        account = _json_object(response)
        acct = str(account.get("acct") or account.get("username") or "")
        if not account.get("id") or not acct:
            raise InvalidInput(
                FieldError("instance_url", f"{instance} does not answer like a Mastodon server")
            )
        return Connection(
            handle=_mastodon_handle(acct, instance),
            external_id=str(account["id"]),
            settings=settings,
            credentials=credentials,
            expires_at=None,
        )

    def refresh(self, account: AccountRef) -> Refreshed:
        token = account.credentials.get("access_token")
        if not token:
            raise NeedsAuth("mastodon: the account has no access token; connect it again")
        instance = str(account.settings.get("instance_url") or "").rstrip("/")
        if not instance:
            raise PermanentError("mastodon: the account has no instance_url setting")
        response = self._verify(instance, str(token))
        if response.status_code in (401, 403):
            raise NeedsAuth(
                "mastodon: the token was revoked or is no longer accepted "
                f"({_mastodon_error(response)}, HTTP {response.status_code}); connect the "
                "account again",
                http_status=response.status_code,
            )
        if response.status_code != 200:
            raise self._error(response)
        return Refreshed(credentials=dict(account.credentials), expires_at=None)

    def _verify(self, instance: str, token: str) -> httpx.Response:
        try:
            return self._client.get(
                f"{instance}/api/v1/accounts/verify_credentials",
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TransportError as exc:
            raise transport_error(self.platform, exc) from exc

    def _error(self, response: httpx.Response) -> Exception:
        return status_error(self.platform, response, reset_headers=_MASTODON_RESET_HEADERS)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _mastodon_error(response: httpx.Response) -> str:
    error = _json_object(response).get("error")
    return str(error) if error else f"HTTP {response.status_code}"


def _mastodon_handle(acct: str, instance: str) -> str:
    """`@user@host`: the instance's host (and port, when not the default) for a local acct."""
    acct = acct.removeprefix("@")
    if "@" in acct:
        return f"@{acct}"
    url = httpx.URL(instance)
    host = url.host if url.port is None else f"{url.host}:{url.port}"
    return f"@{acct}@{host}"
