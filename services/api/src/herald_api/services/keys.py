"""Tenants and their API keys as an operator manages them: list, create, revoke.

Shared by the admin API, the console and `herald-admin`. A revoked key is refused by every
API process within API_KEY_CACHE_SECONDS (each keeps the rows it read that long), and the
console sessions it opened end at once.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func
from sqlmodel import Session, col, select

from herald_api.auth import create_tenant, issue_api_key
from herald_common.errors import NotFound
from herald_common.models import ApiKey, ConsoleSession, Tenant
from herald_common.timeutil import utcnow

log = logging.getLogger(__name__)
#: The most rows a listing returns (an operator's page, not an export).
LIST_LIMIT = 500


def key_fields(key: ApiKey) -> dict[str, Any]:
    """What is shown of a key: everything but its hash."""
    return {
        "id": key.id,
        "tenant_id": key.tenant_id,
        "name": key.name,
        "prefix": key.prefix,
        "is_admin": key.is_admin,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def list_keys(session: Session, tenant_id: str | None = None) -> list[ApiKey]:
    """API keys, newest first: one tenant's, or everyone's."""
    query = select(ApiKey)
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    query = query.order_by(col(ApiKey.created_at).desc(), col(ApiKey.id).desc())
    return list(session.exec(query.limit(LIST_LIMIT)).all())


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    """The tenant; NotFound otherwise."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id}")
    return tenant


def create_key(
    session: Session, tenant_id: str, *, name: str = "default", is_admin: bool = False
) -> dict[str, Any]:
    """A new key of the tenant: its fields and `api_key`, the plaintext, shown this once."""
    get_tenant(session, tenant_id)
    plaintext = issue_api_key(session, tenant_id, name=name, is_admin=is_admin)
    key = session.exec(select(ApiKey).where(ApiKey.prefix == plaintext.split("_")[1])).one()
    return {**key_fields(key), "api_key": plaintext}


def revoke_key(session: Session, key_id: str, *, now: datetime | None = None) -> ApiKey:
    """Revoke the key (again is a no-op) and end the console sessions it opened."""
    key = session.exec(select(ApiKey).where(ApiKey.id == key_id).with_for_update()).first()
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        session.add(key)
        log.info("API key %s (prefix %s) of tenant %s revoked", key.id, key.prefix, key.tenant_id)
    session.execute(delete(ConsoleSession).where(col(ConsoleSession.key_id) == key_id))
    session.flush()
    return key


def new_tenant(session: Session, name: str, *, admin: bool = False) -> dict[str, Any]:
    """A tenant and its first key: `tenant_id`, and `key` with the plaintext shown this once."""
    tenant, plaintext = create_tenant(session, name, is_admin=admin)
    key = session.exec(select(ApiKey).where(ApiKey.prefix == plaintext.split("_")[1])).one()
    return {"tenant_id": tenant.id, "key": {**key_fields(key), "api_key": plaintext}}


def list_tenants(session: Session) -> list[dict[str, Any]]:
    """Tenants, newest first, with how many of their keys work and how many of those are
    admin keys."""
    working = col(ApiKey.revoked_at).is_(None)
    rows = session.exec(
        select(
            Tenant,
            func.count(col(ApiKey.id)).filter(working),
            func.sum(case((working & col(ApiKey.is_admin), 1), else_=0)),
        )
        .join(ApiKey, col(ApiKey.tenant_id) == col(Tenant.id), isouter=True)
        .group_by(col(Tenant.id))
        .order_by(col(Tenant.created_at).desc(), col(Tenant.id).desc())
        .limit(LIST_LIMIT)
    ).all()
    return [
        {
            "id": tenant.id,
            "name": tenant.name,
            "created_at": tenant.created_at,
            "active_keys": int(active or 0),
            "admin_keys": int(admins or 0),
        }
        for tenant, active, admins in rows
    ]
