"""The console's sign-in: an admin API key opens a session kept in a cookie; CSRF tokens.

- A session is a row (`console_sessions`) found by the SHA-256 of a 256-bit random token; the
  cookie holds the token (HttpOnly, SameSite=Strict, path /admin, and Secure when the request
  came over TLS or PUBLIC_URL is https: behind a proxy that ends TLS, the API may see plain
  HTTP). Each request reads the row joined with its key, so signing out, the session's end
  or the key's revocation refuse it at once (not after the API's key cache).
- Only an admin key opens one; a tenant's key is refused.
- Every form carries the session's synchronizer token, compared in constant time; the
  sign-in form, before any session exists, a double-submit token (a cookie and a field).
  A request whose Origin header names another site is refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import falcon
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_api.auth import ApiKeys
from herald_common.db import session_scope
from herald_common.errors import Forbidden, Unauthorized
from herald_common.models import ApiKey, ConsoleSession
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)
COOKIE = "herald_console"
SIGN_IN_COOKIE = "herald_console_sign_in"
PATH = "/admin"
CSRF_FIELD = "csrf_token"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Both present and equal, compared in constant time."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def same_origin(req: falcon.Request) -> bool:
    """False when the request says it comes from another site (Origin, else Referer); a
    request that names no origin passes (the CSRF token is the check that always holds)."""
    origin = req.get_header("Origin") or req.get_header("Referer")
    if not origin or origin == "null":
        return origin is None
    here = {req.netloc, req.forwarded_host}
    return urlsplit(origin).netloc in here


def set_cookie(
    req: falcon.Request,
    resp: falcon.Response,
    name: str,
    value: str,
    max_age: int,
    *,
    tls: bool = False,
) -> None:
    """A console cookie: HttpOnly, SameSite=Strict, path /admin, Secure over TLS (or when
    `tls` says the browser reaches Herald over it)."""
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        secure=tls or req.scheme == "https",
        http_only=True,
        same_site="Strict",
    )


def clear_cookie(req: falcon.Request, resp: falcon.Response, name: str) -> None:
    """Tell the browser to drop a console cookie."""
    resp.unset_cookie(name, path=PATH, same_site="Strict")


@dataclass(frozen=True)
class Operator:
    """Who is signed in: the admin key's id, tenant and public prefix, and the session's
    CSRF token."""

    key_id: str
    tenant_id: str
    prefix: str
    csrf_token: str
    expires_at: datetime


class Sessions:
    """Opens, finds and ends console sessions."""

    def __init__(
        self,
        engine: Engine,
        keys: ApiKeys,
        *,
        lifetime_seconds: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._lifetime = timedelta(seconds=lifetime_seconds)
        self._clock = clock

    @property
    def lifetime_seconds(self) -> int:
        return int(self._lifetime.total_seconds())

    def sign_in(self, api_key: str) -> str:
        """A new session's token for an admin key; Unauthorized for a key that is missing,
        wrong or revoked, Forbidden for a tenant's key."""
        try:
            principal = self._keys.authenticate(api_key.strip() or None)
        except Unauthorized:
            log.warning("console: a sign-in with a missing, unknown or revoked key was refused")
            raise
        if not principal.is_admin:
            log.warning("console: a tenant's key (%s) was refused", principal.key_id)
            raise Forbidden("this is a tenant's API key: only an admin key may sign in")
        token, now = secrets.token_urlsafe(32), self._clock()
        with session_scope(self._engine) as session:
            # Ended sessions go as new ones begin: the table holds only live ones for long.
            session.execute(delete(ConsoleSession).where(col(ConsoleSession.expires_at) < now))
            session.add(
                ConsoleSession(
                    token_hash=_digest(token),
                    key_id=principal.key_id,
                    csrf_token=secrets.token_urlsafe(32),
                    created_at=now,
                    expires_at=now + self._lifetime,
                )
            )
        log.info("console: signed in with admin key %s", principal.key_id)
        return token

    def find(self, token: str | None) -> Operator | None:
        """The operator of a live session: None when the token is unknown, the session has
        ended, or its key was revoked or is no longer an admin key."""
        if not token:
            return None
        with session_scope(self._engine) as session:
            row = session.exec(
                select(ConsoleSession, ApiKey)
                .join(ApiKey, col(ApiKey.id) == col(ConsoleSession.key_id))
                .where(ConsoleSession.token_hash == _digest(token))
            ).first()
        if row is None:
            return None
        found, key = row
        if found.expires_at <= self._clock() or key.revoked_at is not None or not key.is_admin:
            return None
        return Operator(
            key_id=key.id,
            tenant_id=key.tenant_id,
            prefix=key.prefix,
            csrf_token=found.csrf_token,
            expires_at=found.expires_at,
        )

    def sign_out(self, token: str | None) -> None:
        """End the session of this token (nothing when there is none)."""
        if not token:
            return
        with session_scope(self._engine) as session:
            session.execute(
                delete(ConsoleSession).where(col(ConsoleSession.token_hash) == _digest(token))
            )
