"""/v1/images: render images, read them, serve their bytes, attach them to posts;
/media/images/{token}: the public, signed URL platforms fetch them from."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body, parse_query
from herald_api.resources.jobs import accepted
from herald_api.routing import Operation, Route
from herald_api.schemas import PostDetailOut
from herald_api.schemas.images import (
    AttachImageBody,
    ImageCreate,
    ImageListQuery,
    ImageOut,
    ImagePage,
)
from herald_api.schemas.jobs import JobOut
from herald_api.services import images, posts
from herald_common.db import session_scope
from herald_common.images.signing import MediaSigner
from herald_common.images.storage import ImageStore
from herald_common.models import Image
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

#: The bytes of an id never change, so caches may keep them; a day bounds how long a cache
#: serves an image after it was deleted.
PRIVATE_CACHE = "private, max-age=86400, immutable"
PUBLIC_CACHE = "public, max-age=86400, immutable"


def _send_bytes(
    req: falcon.Request, resp: falcon.Response, image: Image, data: bytes | None, cache: str
) -> None:
    """The bytes with their type, ETag (the SHA-256) and caching; 304 when the client has them."""
    resp.etag = image.sha256
    resp.cache_control = [cache]
    wanted = req.if_none_match or []
    if any(tag == "*" or str(tag) == image.sha256 for tag in wanted):
        resp.status = falcon.HTTP_304
        return
    resp.content_type = image.media_type
    resp.set_header("X-Content-Type-Options", "nosniff")
    if data is not None:
        resp.data = data
    resp.content_length = image.size_bytes or (len(data) if data is not None else 0)


class ImageCollection:
    """/v1/images"""

    def __init__(self, engine: Engine, broker: Broker, links: images.Links) -> None:
        self._engine = engine
        self._broker = broker
        self._links = links

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, ImageListQuery)
        with session_scope(self._engine) as session:
            rows, next_cursor = images.list_images(
                session,
                req.context.tenant_id,
                brand_id=query.brand_id,
                limit=query.limit,
                cursor=query.cursor,
            )
            page = ImagePage(
                data=[images.describe(row, self._links) for row in rows], next_cursor=next_cursor
            )
        resp.media = page.model_dump(mode="json")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, ImageCreate)
        job = images.start_generation(
            self._engine,
            self._broker,
            req.context.tenant_id,
            body,
            max_active=req.context.max_active_jobs,
        )
        accepted(resp, job)


class ImageItem:
    """/v1/images/{image_id} and its content."""

    def __init__(self, engine: Engine, store: ImageStore, links: images.Links) -> None:
        self._engine = engine
        self._store = store
        self._links = links

    def on_get(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        with session_scope(self._engine) as session:
            image = images.get_image(session, req.context.tenant_id, image_id)
        resp.media = images.describe(image, self._links).model_dump(mode="json")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        with session_scope(self._engine) as session:
            image = images.delete_image(session, req.context.tenant_id, image_id)
        # Only once the row is gone for good: a rolled-back delete keeps its bytes.
        self._store.delete(image)
        resp.status = falcon.HTTP_204

    def on_get_content(self, req: falcon.Request, resp: falcon.Response, image_id: str) -> None:
        with session_scope(self._engine) as session:
            image = images.get_image(session, req.context.tenant_id, image_id, data=True)
        _send_bytes(req, resp, image, images.read_bytes(self._store, image), PRIVATE_CACHE)


class PublicImage:
    """/media/images/{token}: no key; the token's signature is the credential."""

    def __init__(self, engine: Engine, store: ImageStore, signer: MediaSigner) -> None:
        self._engine = engine
        self._store = store
        self._signer = signer

    def _image(self, token: str) -> Image:
        with session_scope(self._engine) as session:
            return images.public_image(session, self._signer, token)

    def on_get(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        image = self._image(token)
        _send_bytes(req, resp, image, images.read_bytes(self._store, image), PUBLIC_CACHE)

    def on_head(self, req: falcon.Request, resp: falcon.Response, token: str) -> None:
        # Some fetchers ask for the type and size first.
        image = self._image(token)
        _send_bytes(req, resp, image, None, PUBLIC_CACHE)


class PostMedia:
    """/v1/posts/{post_id}/media"""

    def __init__(self, engine: Engine, platforms: PlatformRegistry, links: images.Links) -> None:
        self._engine = engine
        self._platforms = platforms
        self._links = links

    def on_post(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        body = parse_body(req, AttachImageBody)
        with session_scope(self._engine) as session:
            post = images.attach_image(
                session,
                req.context.tenant_id,
                post_id,
                body,
                links=self._links,
                platforms=self._platforms,
            )
            out = posts.describe_detail(session, post)
        resp.media = out.model_dump(mode="json")


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The images routes."""
    links = images.Links.from_settings(settings)
    store = ImageStore.from_settings(settings)
    item = ImageItem(engine, store, links)
    return [
        Route(
            "/v1/images",
            ImageCollection(engine, broker, links),
            (
                Operation(
                    "get",
                    "List images, newest first",
                    ImagePage,
                    query=ImageListQuery,
                ),
                Operation(
                    "post",
                    "Render an image (a job)",
                    JobOut,
                    status=202,
                    body=ImageCreate,
                    description="Checks the request (size 64–4096 px a side, at most 4:1 either "
                    "way; the style; the brand) before anything is queued, then answers with "
                    "the `image.generate` job: poll `/v1/jobs/{id}` until it has succeeded; "
                    "its `result` holds `image_id` and the public `url`.",
                ),
            ),
            tag="images",
        ),
        Route(
            "/v1/images/{image_id}",
            item,
            (
                Operation("get", "An image's details and URLs", ImageOut),
                Operation(
                    "delete",
                    "Delete an image and its bytes",
                    status=204,
                    errors=(409,),
                    description="409 while a post that has not been published in full "
                    "carries it: take it off the post's media, or delete the post, first. "
                    "Its public URL answers 404 from then on.",
                ),
            ),
            tag="images",
        ),
        Route(
            "/v1/images/{image_id}/content",
            item,
            (
                Operation(
                    "get",
                    "An image's bytes",
                    None,
                    media_type="image/png",
                    description="With its type, `ETag` (the SHA-256) and caching headers; "
                    "`If-None-Match` answers 304.",
                ),
            ),
            suffix="content",
            tag="images",
        ),
        Route(
            "/media/images/{token}",
            PublicImage(engine, store, links.signer),
            (
                Operation(
                    "get",
                    "An image's bytes at its public, signed URL (no key)",
                    None,
                    public=True,
                    media_type="image/png",
                    description="The URL an image's `url` gives, for platforms to fetch when "
                    "a post goes out. 404 for a signature Herald did not make, exactly as for "
                    "an image that does not exist.",
                ),
            ),
            tag="images",
        ),
        Route(
            "/v1/posts/{post_id}/media",
            PostMedia(engine, platforms, links),
            (
                Operation(
                    "post",
                    "Attach an image to a post",
                    PostDetailOut,
                    body=AttachImageBody,
                    errors=(409,),
                    description="Adds the image's public URL (with its type, size and `alt`) "
                    "to the post's media, as a PATCH of `media` would: every platform's "
                    "limits apply (422 naming the rule), and a post that has gone out "
                    "answers 409. Attaching the same image again replaces its entry.",
                ),
            ),
            tag="images",
        ),
    ]
