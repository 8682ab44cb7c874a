"""/v1/admin/tenants and /v1/admin/keys: tenants and their API keys (admin keys only: the auth
middleware refuses others on every /v1/admin/ route)."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body, parse_query
from herald_api.routing import Operation, Route
from herald_api.schemas.keys import (
    IssuedKeyOut,
    KeyCreate,
    KeyList,
    KeyListQuery,
    KeyOut,
    TenantCreate,
    TenantCreatedOut,
    TenantList,
)
from herald_api.services import keys
from herald_common.db import session_scope
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings


class TenantCollection:
    """GET, POST /v1/admin/tenants"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with session_scope(self._engine) as session:
            rows = keys.list_tenants(session)
        resp.media = TenantList.model_validate({"data": rows}).model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, TenantCreate)
        with session_scope(self._engine) as session:
            made = keys.new_tenant(session, body.name, admin=body.admin)
        resp.status = 201
        resp.media = TenantCreatedOut.model_validate(made).model_dump(mode="json")


class KeyCollection:
    """GET, POST /v1/admin/keys"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, KeyListQuery)
        with session_scope(self._engine) as session:
            rows = [keys.key_fields(k) for k in keys.list_keys(session, query.tenant_id)]
        resp.media = KeyList.model_validate({"data": rows}).model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, KeyCreate)
        with session_scope(self._engine) as session:
            made = keys.create_key(session, body.tenant_id, name=body.name, is_admin=body.is_admin)
        resp.status = 201
        resp.media = IssuedKeyOut.model_validate(made).model_dump(mode="json")


class KeyRevoke:
    """POST /v1/admin/keys/{key_id}/revoke"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_post(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        with session_scope(self._engine) as session:
            key = keys.key_fields(keys.revoke_key(session, key_id))
        resp.media = KeyOut.model_validate(key).model_dump(mode="json")


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The tenant and key routes."""
    return [
        Route(
            "/v1/admin/tenants",
            TenantCollection(engine),
            (
                Operation("get", "Every tenant (admin keys)", TenantList, errors=(403,)),
                Operation(
                    "post",
                    "Create a tenant and its first key (admin keys)",
                    TenantCreatedOut,
                    status=201,
                    body=TenantCreate,
                    errors=(403,),
                    description="The key's plaintext is in this answer only; Herald keeps "
                    "its SHA-256.",
                ),
            ),
            tag="admin",
        ),
        Route(
            "/v1/admin/keys",
            KeyCollection(engine),
            (
                Operation(
                    "get",
                    "API keys, newest first (admin keys)",
                    KeyList,
                    query=KeyListQuery,
                    errors=(403, 422),
                ),
                Operation(
                    "post",
                    "Create an API key for a tenant (admin keys)",
                    IssuedKeyOut,
                    status=201,
                    body=KeyCreate,
                    errors=(403, 404),
                ),
            ),
            tag="admin",
        ),
        Route(
            "/v1/admin/keys/{key_id}/revoke",
            KeyRevoke(engine),
            (
                Operation(
                    "post",
                    "Revoke an API key (admin keys)",
                    KeyOut,
                    errors=(403,),
                    description="Every API process refuses it within API_KEY_CACHE_SECONDS "
                    "(5 s by default); the console sessions it opened end at once. Revoking "
                    "a revoked key changes nothing.",
                ),
            ),
            tag="admin",
        ),
    ]
