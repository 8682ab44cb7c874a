"""Connected accounts."""

from __future__ import annotations

import falcon
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body
from herald_api.schemas import (
    AccountCreate,
    AccountList,
    AccountOut,
    AccountUpdate,
    SandboxDeliveryList,
    SandboxDeliveryOut,
)
from herald_api.services import accounts
from herald_common.db import session_scope
from herald_common.platforms import PlatformRegistry


class AccountCollection:
    """/v1/accounts"""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with session_scope(self._engine) as session:
            rows = accounts.list_accounts(session, req.context.tenant_id)
            out = AccountList(data=[AccountOut.model_validate(a) for a in rows])
        resp.media = out.model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, AccountCreate)
        with session_scope(self._engine) as session:
            account = accounts.create_account(
                session, req.context.tenant_id, body, platforms=self._platforms
            )
            out = AccountOut.model_validate(account)
        resp.status = 201
        resp.location = f"/v1/accounts/{out.id}"
        resp.media = out.model_dump(mode="json")


class AccountItem:
    """/v1/accounts/{account_id} and its sub-resources."""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_get(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        with session_scope(self._engine) as session:
            account = accounts.get_account(session, req.context.tenant_id, account_id)
            out = AccountOut.model_validate(account)
        resp.media = out.model_dump(mode="json")

    def on_patch(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        body = parse_body(req, AccountUpdate)
        with session_scope(self._engine) as session:
            account = accounts.update_account(
                session, req.context.tenant_id, account_id, body, platforms=self._platforms
            )
            out = AccountOut.model_validate(account)
        resp.media = out.model_dump(mode="json")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, account_id: str) -> None:
        with session_scope(self._engine) as session:
            accounts.delete_account(session, req.context.tenant_id, account_id)
        resp.status = 204

    def on_get_sandbox_posts(
        self, req: falcon.Request, resp: falcon.Response, account_id: str
    ) -> None:
        with session_scope(self._engine) as session:
            rows = accounts.sandbox_deliveries(session, req.context.tenant_id, account_id)
            out = SandboxDeliveryList(data=[SandboxDeliveryOut.model_validate(r) for r in rows])
        resp.media = out.model_dump(mode="json")
