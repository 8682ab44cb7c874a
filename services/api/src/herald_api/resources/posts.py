"""Posts and their transitions."""

from __future__ import annotations

from collections.abc import Callable

import falcon
from sqlalchemy.engine import Engine
from sqlmodel import Session

from herald_api.parsing import parse_body, parse_query
from herald_api.schemas import (
    PostCreate,
    PostListQuery,
    PostPage,
    PostUpdate,
    ResolveBody,
    ScheduleBody,
)
from herald_api.services import posts
from herald_common.db import session_scope
from herald_common.models import Post
from herald_common.platforms import PlatformRegistry


class PostCollection:
    """/v1/posts"""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, PostListQuery)
        with session_scope(self._engine) as session:
            rows, next_cursor = posts.list_posts(
                session,
                req.context.tenant_id,
                status=query.status,
                limit=query.limit,
                cursor=query.cursor,
            )
            page = PostPage(data=posts.describe(session, rows), next_cursor=next_cursor)
        resp.media = page.model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, PostCreate)
        with self._engine.begin() as db:
            out = posts.create_post(db, req.context.tenant_id, body, platforms=self._platforms)
        resp.status = 201
        resp.location = f"/v1/posts/{out.id}"
        resp.media = out.model_dump(mode="json")


class PostItem:
    """/v1/posts/{post_id} and its actions (schedule, publish, cancel, retry)."""

    def __init__(self, engine: Engine, platforms: PlatformRegistry) -> None:
        self._engine = engine
        self._platforms = platforms

    def _run(self, resp: falcon.Response, change: Callable[[Session], Post]) -> None:
        # The response shows the post as this transaction left it.
        with session_scope(self._engine) as session:
            out = posts.describe_detail(session, change(session))
        resp.media = out.model_dump(mode="json")

    def on_get(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        tenant_id = req.context.tenant_id
        self._run(resp, lambda session: posts.get_post(session, tenant_id, post_id))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        body = parse_body(req, PostUpdate)
        tenant_id = req.context.tenant_id
        self._run(
            resp,
            lambda session: posts.update_post(
                session, tenant_id, post_id, body, platforms=self._platforms
            ),
        )

    def on_delete(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        with session_scope(self._engine) as session:
            posts.delete_post(session, req.context.tenant_id, post_id)
        resp.status = 204

    def on_put_schedule(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        body = parse_body(req, ScheduleBody)
        tenant_id = req.context.tenant_id
        self._run(
            resp,
            lambda session: posts.schedule_post(
                session, tenant_id, post_id, body, platforms=self._platforms
            ),
        )

    def on_post_publish(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        tenant_id = req.context.tenant_id
        self._run(
            resp,
            lambda session: posts.publish_post(
                session, tenant_id, post_id, platforms=self._platforms
            ),
        )

    def on_post_cancel(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        tenant_id = req.context.tenant_id
        self._run(resp, lambda session: posts.cancel_post(session, tenant_id, post_id))

    def on_post_retry(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        tenant_id = req.context.tenant_id
        self._run(resp, lambda session: posts.retry_post(session, tenant_id, post_id))

    def on_post_resolve(
        self, req: falcon.Request, resp: falcon.Response, post_id: str, target_id: str
    ) -> None:
        body = parse_body(req, ResolveBody)
        tenant_id = req.context.tenant_id
        self._run(
            resp,
            lambda session: posts.resolve_target(session, tenant_id, post_id, target_id, body),
        )
