"""API keys: issued once in plaintext, stored as a SHA-256, found by their public prefix.

A key reads `hrld_<prefix>_<secret>`: a 12-character prefix (the lookup handle, safe to log)
and a secret of 43 url-safe characters from `secrets`. Only `sha256(whole key)` is stored.

Each API process keeps the key rows it read for API_KEY_CACHE_SECONDS (`ApiKeys`), so a
request with a key seen lately costs no query; a key revoked in the database therefore stops
working within that many seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from herald_common.errors import Unauthorized
from herald_common.models import ApiKey, Tenant

KEY_SCHEME = "hrld"
PREFIX_LENGTH = 12
_PREFIX_ALPHABET = string.ascii_letters + string.digits
_SECRET_BYTES = 32  # → 43 url-safe characters
_MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant the key belongs to, and whether it is an admin key."""

    tenant_id: str
    is_admin: bool
    key_id: str
    #: The tenant's own limits (null: the settings' defaults).
    rate_limit: str | None = None
    max_active_jobs: int | None = None


def hash_key(key: str) -> str:
    """The stored form of a key: SHA-256 hex of the whole key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def issue_api_key(
    session: Session, tenant_id: str, *, name: str = "default", is_admin: bool = False
) -> str:
    """Create a key for the tenant and return it in plaintext; this is the only time it is seen."""
    # The prefix avoids "_" so that it can never be confused with the separator.
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    session.add(
        ApiKey(
            tenant_id=tenant_id, name=name, prefix=prefix, key_hash=hash_key(key), is_admin=is_admin
        )
    )
    session.flush()
    return key


def create_tenant(session: Session, name: str, *, is_admin: bool = False) -> tuple[Tenant, str]:
    """A new tenant and its first API key (plaintext, returned once)."""
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant, issue_api_key(session, tenant.id, is_admin=is_admin)


def _split(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    scheme, sep, rest = key.partition("_")
    if scheme != KEY_SCHEME or not sep:
        return None
    prefix, secret = rest[:PREFIX_LENGTH], rest[PREFIX_LENGTH + 1 :]
    if len(prefix) != PREFIX_LENGTH or rest[PREFIX_LENGTH : PREFIX_LENGTH + 1] != "_":
        return None
    if len(secret) < _MIN_SECRET_LENGTH:
        return None
    return prefix


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class StoredKey:
    """What the api_keys row of a prefix says: enough to check a key without the database."""

    key_id: str
    tenant_id: str
    key_hash: str
    is_admin: bool
    revoked: bool
    rate_limit: str | None = None
    max_active_jobs: int | None = None


_KEYS = ApiKey.__table__  # type: ignore[attr-defined]
_TENANTS = Tenant.__table__  # type: ignore[attr-defined]
_FIND_KEY = (
    select(
        _KEYS.c.id,
        _KEYS.c.tenant_id,
        _KEYS.c.key_hash,
        _KEYS.c.is_admin,
        _KEYS.c.revoked_at,
        _TENANTS.c.rate_limit,
        _TENANTS.c.max_active_jobs,
    )
    .join(_TENANTS, _TENANTS.c.id == _KEYS.c.tenant_id)
    .where(_KEYS.c.prefix == bindparam("prefix"))
)
# What an unknown prefix is compared with, so that it takes as long as a wrong secret.
_NO_HASH = hash_key("")


def check_key(key: str | None, stored: StoredKey | None) -> Principal:
    """The principal of `key` whose prefix found `stored` (None: nothing); Unauthorized when
    the key is missing, unknown, wrong or revoked."""
    if not key:
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    expected = stored.key_hash if stored is not None else _NO_HASH
    matches = hmac.compare_digest(expected, hash_key(key))
    if stored is None or not matches:
        raise Unauthorized("invalid API key")
    if stored.revoked:
        raise Unauthorized("this API key has been revoked")
    return Principal(
        tenant_id=stored.tenant_id,
        is_admin=stored.is_admin,
        key_id=stored.key_id,
        rate_limit=stored.rate_limit,
        max_active_jobs=stored.max_active_jobs,
    )


class ApiKeys:
    """Checks API keys against the api_keys rows, each row kept for `ttl` seconds once read.

    The cache is this process's own (one per gunicorn worker), holds at most `size` rows
    (the oldest read goes first) and is keyed by prefix. A row is kept with whatever it said,
    revoked or not, so a key revoked in the database stops working within `ttl` seconds: the
    time of a row is taken before it is read, so no revocation it missed outlives it by more.
    `forget` drops a prefix at once, for a revocation made in this process. `ttl` 0 turns the
    cache off (every request reads its row).

    Only rows that exist are kept. A prefix that finds nothing (a typo, a deleted key, someone
    guessing) is read again each time, as it was before the cache: keeping misses would let
    made-up prefixes push real keys out of the cache. A wrong secret with a real prefix is
    answered from the cached row.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ttl: float,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._lock = threading.Lock()
        # prefix → (when it was read, the row); insertion order is the order they were read.
        self._rows: dict[str, tuple[float, StoredKey]] = {}
        # Bumped by every `forget`: a row read before one is not kept (it may be the old row).
        self._forgets = 0

    def authenticate(self, key: str | None) -> Principal:
        """The principal of a key; Unauthorized when it is missing, unknown, wrong or revoked."""
        prefix = _split(key) if key else None
        return check_key(key, self._find(prefix) if prefix is not None else None)

    def forget(self, prefix: str) -> None:
        """Drop the prefix's row: the next request with it reads the database."""
        with self._lock:
            self._rows.pop(prefix, None)
            self._forgets += 1

    def _find(self, prefix: str) -> StoredKey | None:
        now = self._clock()
        with self._lock:
            cached = self._rows.get(prefix)
            forgets = self._forgets
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        with self._engine.connect() as connection:
            row = connection.execute(_FIND_KEY, {"prefix": prefix}).first()
        if row is None:
            return None
        stored = StoredKey(
            key_id=row.id,
            tenant_id=row.tenant_id,
            key_hash=row.key_hash,
            is_admin=row.is_admin,
            revoked=row.revoked_at is not None,
            rate_limit=row.rate_limit,
            max_active_jobs=row.max_active_jobs,
        )
        if self._ttl > 0:
            with self._lock:
                if forgets != self._forgets:
                    return stored
                self._rows.pop(prefix, None)
                self._rows[prefix] = (now, stored)
                while len(self._rows) > self._size:
                    del self._rows[next(iter(self._rows))]
        return stored
