"""API keys: issued once in plaintext, stored as a SHA-256, found by their public prefix.

A key reads `hrld_<prefix>_<secret>`: a 12-character prefix (the lookup handle, safe to log)
and a secret of 43 url-safe characters from `secrets`. Only `sha256(whole key)` is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

from sqlmodel import Session, select

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


def authenticate(session: Session, key: str | None) -> Principal:
    """The principal of a key; Unauthorized when it is missing, unknown, wrong or revoked."""
    if not key:
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    prefix = _split(key)
    row = (
        session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
        if prefix is not None
        else None
    )
    # Compare even when nothing was found, so a wrong prefix takes as long as a wrong secret.
    expected = row.key_hash if row is not None else hash_key("")
    matches = hmac.compare_digest(expected, hash_key(key))
    if row is None or not matches:
        raise Unauthorized("invalid API key")
    if row.revoked_at is not None:
        raise Unauthorized("this API key has been revoked")
    return Principal(tenant_id=row.tenant_id, is_admin=row.is_admin, key_id=row.id)
