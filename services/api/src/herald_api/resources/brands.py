"""/v1/brands: a tenant's brands (voice, look, time zone, default accounts, approvals)."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body, parse_query
from herald_api.routing import Operation, Route
from herald_api.schemas.brands import BrandCreate, BrandListQuery, BrandOut, BrandPage, BrandUpdate
from herald_api.services import brands
from herald_common.db import session_scope
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings


class BrandCollection:
    """/v1/brands"""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, BrandListQuery)
        with session_scope(self._engine) as session:
            rows, next_cursor = brands.list_brands(
                session, req.context.tenant_id, limit=query.limit, cursor=query.cursor
            )
            page = BrandPage(
                data=[BrandOut.model_validate(row) for row in rows], next_cursor=next_cursor
            )
        resp.media = page.model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, BrandCreate)
        with session_scope(self._engine) as session:
            brand = brands.create_brand(
                session, req.context.tenant_id, body, addresses=self._platforms.addresses
            )
            out = BrandOut.model_validate(brand)
        resp.status = 201
        resp.location = f"/v1/brands/{out.id}"
        resp.media = out.model_dump(mode="json")


class BrandItem:
    """/v1/brands/{brand_id}"""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_get(self, req: falcon.Request, resp: falcon.Response, brand_id: str) -> None:
        with session_scope(self._engine) as session:
            brand = brands.get_brand(session, req.context.tenant_id, brand_id)
            resp.media = BrandOut.model_validate(brand).model_dump(mode="json")

    def on_patch(self, req: falcon.Request, resp: falcon.Response, brand_id: str) -> None:
        body = parse_body(req, BrandUpdate)
        with session_scope(self._engine) as session:
            brand = brands.update_brand(
                session,
                req.context.tenant_id,
                brand_id,
                body,
                addresses=self._platforms.addresses,
            )
            out = BrandOut.model_validate(brand)
        resp.media = out.model_dump(mode="json")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, brand_id: str) -> None:
        with session_scope(self._engine) as session:
            brands.delete_brand(session, req.context.tenant_id, brand_id)
        resp.status = 204


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The brands routes."""
    return [
        Route(
            "/v1/brands",
            BrandCollection(engine, platforms),
            (
                Operation("get", "List brands, newest first", BrandPage, query=BrandListQuery),
                Operation(
                    "post",
                    "Create a brand",
                    BrandOut,
                    status=201,
                    body=BrandCreate,
                    errors=(422,),
                    description="Its voice (tone, topics, hashtags) guides generated posts, its "
                    "colours and fonts the images, its time zone when posts are suggested, and "
                    "its approvers and notification type the approvals.",
                ),
            ),
            tag="brands",
        ),
        Route(
            "/v1/brands/{brand_id}",
            BrandItem(engine, platforms),
            (
                Operation("get", "Get a brand", BrandOut),
                Operation(
                    "patch",
                    "Change a brand",
                    BrandOut,
                    body=BrandUpdate,
                    errors=(422,),
                    description="Fields left out stay as they are; `version` goes up by one.",
                ),
                Operation(
                    "delete",
                    "Delete a brand",
                    status=204,
                    description="Its posts stay, without a brand.",
                ),
            ),
            tag="brands",
        ),
    ]
