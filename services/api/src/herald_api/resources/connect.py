"""Connecting accounts (OAuth and direct), and asking for token refreshes."""

from __future__ import annotations

import falcon
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body, parse_query
from herald_api.schemas import (
    AccountList,
    AccountOut,
    AdminRefreshBody,
    ConnectQuery,
    ConnectStartOut,
    DirectConnectBody,
    RefreshRequestedOut,
)
from herald_api.services import connect
from herald_common.db import session_scope
from herald_common.errors import FieldError, InvalidInput
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

#: What each direct-connect platform requires in the body.
_REQUIRED = {"bluesky": ("handle", "app_password"), "mastodon": ("instance_url", "access_token")}


class Connect:
    """/v1/accounts/connect/{platform}: start OAuth (GET) or connect with credentials (POST)."""

    def __init__(self, engine: Engine, platforms: PlatformRegistry, settings: Settings) -> None:
        self._engine = engine
        self._platforms = platforms
        self._settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, platform: str) -> None:
        query = parse_query(req, ConnectQuery)
        with session_scope(self._engine) as session:
            started = connect.start_oauth(
                session,
                req.context.tenant_id,
                platform,
                platforms=self._platforms,
                settings=self._settings,
                account_id=query.account_id,
            )
        resp.media = ConnectStartOut.model_validate(started).model_dump(mode="json")
        resp.set_header("Cache-Control", "no-store")

    def on_post(self, req: falcon.Request, resp: falcon.Response, platform: str) -> None:
        body = parse_body(req, DirectConnectBody)
        given = body.model_dump(exclude_none=True, exclude={"settings"})
        required = _REQUIRED.get(platform, ())
        missing = [FieldError(name, "is required") for name in required if name not in given]
        extra = [
            FieldError(name, f"is not used by {platform}")
            for name in given
            if required and name not in required and name != "service_url"
        ]
        if missing or extra:
            raise InvalidInput(missing + extra)
        account = connect.connect_direct(
            self._engine,
            req.context.tenant_id,
            platform,
            given,
            settings=body.settings,
            platforms=self._platforms,
        )
        out = AccountOut.model_validate(account)
        resp.status = 201
        resp.location = f"/v1/accounts/{out.id}"
        resp.media = out.model_dump(mode="json")


class ConnectCallback:
    """/v1/accounts/connect/{platform}/callback: where the platform sends the browser back.

    Public: the single-use `state` from the start of the flow is what authenticates it.
    """

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_get(self, req: falcon.Request, resp: falcon.Response, platform: str) -> None:
        params = {k: v for k, v in req.params.items() if isinstance(v, str)}
        rows = connect.finish_oauth(self._engine, platform, params, platforms=self._platforms)
        resp.media = AccountList(data=[AccountOut.model_validate(a) for a in rows]).model_dump(
            mode="json"
        )
        resp.set_header("Cache-Control", "no-store")


class AccountRefresh:
    """/v1/accounts/{account_id}/refresh: refresh this account's tokens now."""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_post(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        with session_scope(self._engine) as session:
            account = connect.refresh_account(
                session, req.context.tenant_id, account_id, platforms=self._platforms
            )
            out = AccountOut.model_validate(account)
        resp.status = 202
        resp.media = out.model_dump(mode="json")


class AdminRefreshTokens:
    """/v1/admin/refresh-tokens: the operator refreshes one account or all (admin keys only)."""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, AdminRefreshBody)
        with session_scope(self._engine) as session:
            requested = connect.refresh_all(
                session,
                platforms=self._platforms,
                account_id=body.account_id,
                tenant_id=body.tenant_id,
            )
        resp.status = 202
        resp.media = RefreshRequestedOut(requested=requested).model_dump(mode="json")
