"""Images from the API: start one, read, list, delete, serve, attach to a post.

Scoped to the tenant everywhere but the public media URL, whose signature is its credential
(herald_common.images.signing). An image is deleted only when no post that still has something
to publish carries it: a post `published` in full has no further use for the URL, any other
(a draft, a scheduled post, one whose failed targets may be retried) would fetch it later.
"""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.broker import Broker
from pydantic import ValidationError
from sqlalchemy import Text, cast, delete
from sqlalchemy.engine import Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from herald_api.schemas import MediaIn, PostUpdate
from herald_api.schemas.images import AttachImageBody, ImageCreate, ImageOut
from herald_api.services import posts
from herald_api.services.jobs import start_job
from herald_api.services.paging import newest_first
from herald_common.contracts import GENERATE_IMAGE
from herald_common.errors import Conflict, FieldError, InvalidInput, NotFound, field_errors
from herald_common.images.signing import MEDIA_PATH, MediaSigner
from herald_common.images.sizes import resolve_size
from herald_common.images.storage import ImageBytesMissing, ImageStore
from herald_common.models import Brand, Image, Job, Post, PostStatus
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

#: How many of the posts that hold an image a conflict names.
_NAMED_POSTS = 5


@dataclass(frozen=True)
class Links:
    """The URLs an image is reached at."""

    signer: MediaSigner
    public_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Links:
        return cls(MediaSigner.from_settings(settings), settings.public_url.rstrip("/"))

    def url(self, image_id: str) -> str:
        """The signed public URL (no key needed)."""
        return self.signer.url(self.public_url, image_id)

    def content_url(self, image_id: str) -> str:
        """The bytes behind the API key."""
        return f"{self.public_url}/v1/images/{image_id}/content"


def describe(image: Image, links: Links) -> ImageOut:
    """The image as the API shows it."""
    return ImageOut.model_validate(
        {
            **{
                name: getattr(image, name) for name in ImageOut.model_fields if hasattr(image, name)
            },
            "url": links.url(image.id),
            "content_url": links.content_url(image.id),
        }
    )


def start_generation(
    engine: Engine, broker: Broker, tenant_id: str, body: ImageCreate, *, max_active: int
) -> Job:
    """Accept an `image.generate` job; 422 naming the field (nothing written or sent) when the
    size breaks a rule or the brand is not the tenant's."""
    width, height = resolve_size(body.width, body.height, body.platform, body.format)

    def prepare(session: Session) -> dict[str, object]:
        if body.brand_id is not None:
            brand = session.get(Brand, body.brand_id)
            if brand is None or brand.tenant_id != tenant_id:
                raise InvalidInput(FieldError("brand_id", "no such brand"))
        return {
            "prompt": body.prompt,
            "style": body.style,
            "width": width,
            "height": height,
            "brand_id": body.brand_id,
        }

    return start_job(
        engine,
        broker,
        tenant_id,
        GENERATE_IMAGE,
        prepare,
        brand_id=body.brand_id,
        total=1,
        max_active=max_active,
    )


def get_image(
    session: Session, tenant_id: str, image_id: str, *, lock: bool = False, data: bool = False
) -> Image:
    """The tenant's image (its bytes loaded only with `data`); NotFound for anyone else's."""
    query = select(Image).where(col(Image.id) == image_id)
    if not data:
        query = query.options(defer(Image.data))  # type: ignore[arg-type]
    if lock:
        query = query.with_for_update()
    image = session.exec(query).first()
    if image is None or image.tenant_id != tenant_id:
        raise NotFound(f"no image {image_id}")
    return image


def list_images(
    session: Session, tenant_id: str, *, brand_id: str | None, limit: int, cursor: str | None
) -> tuple[list[Image], str | None]:
    """One page of the tenant's images, newest first, without their bytes."""
    query = (
        select(Image).where(col(Image.tenant_id) == tenant_id).options(defer(Image.data))  # type: ignore[arg-type]
    )
    if brand_id is not None:
        query = query.where(col(Image.brand_id) == brand_id)
    return newest_first(session, query, Image, limit=limit, cursor=cursor)


def _holders(session: Session, tenant_id: str, image_id: str) -> list[Post]:
    """The tenant's posts not yet published in full whose media carry the image's URL."""
    marker = f"{MEDIA_PATH}{image_id}."
    return list(
        session.exec(
            select(Post)
            .where(
                col(Post.tenant_id) == tenant_id,
                col(Post.status) != PostStatus.PUBLISHED,
                cast(col(Post.media), Text).contains(marker, autoescape=True),
            )
            .order_by(col(Post.created_at))
        ).all()
    )


def delete_image(session: Session, tenant_id: str, image_id: str) -> Image:
    """Delete the image's row; Conflict while a post that has not gone out carries it.

    The caller removes a file from the store once this has committed (`ImageStore.delete`),
    so a rolled-back delete never loses the bytes of an image that still exists.
    """
    # Locked, so an attach (which locks it too) either sees it gone or is seen here.
    image = get_image(session, tenant_id, image_id, lock=True)
    holders = _holders(session, tenant_id, image_id)
    if holders:
        named = ", ".join(p.id for p in holders[:_NAMED_POSTS])
        more = f" and {len(holders) - _NAMED_POSTS} more" if len(holders) > _NAMED_POSTS else ""
        raise Conflict(
            f"image {image_id} is attached to {len(holders)} post(s) that have not been "
            f"published: {named}{more}; take it off their media (PATCH media) or delete them"
        )
    session.execute(delete(Image).where(col(Image.id) == image.id))
    return image


def read_bytes(store: ImageStore, image: Image) -> bytes:
    """The image's bytes; NotFound when the store has lost them."""
    try:
        return store.read(image)
    except ImageBytesMissing as exc:
        raise NotFound(f"the bytes of image {image.id} are missing ({exc})") from None


def public_image(session: Session, signer: MediaSigner, token: str) -> Image:
    """The image a public media token was signed for; NotFound alike for a bad signature and
    for an image that does not exist (or no longer does)."""
    image_id = signer.verify(token)
    image = session.get(Image, image_id) if image_id is not None else None
    if image is None:
        raise NotFound("no such image")
    return image


def attach_image(
    session: Session,
    tenant_id: str,
    post_id: str,
    body: AttachImageBody,
    *,
    links: Links,
    platforms: PlatformRegistry,
) -> Post:
    """Add the image to the post's media (as its signed public URL) through `update_post`, so
    every platform rule applies; attaching it again replaces its entry (a new `alt`)."""
    post = posts.get_post(session, tenant_id, post_id, lock=True)
    try:
        image = get_image(session, tenant_id, body.image_id, lock=True)
    except NotFound:
        raise InvalidInput(FieldError("image_id", "no such image")) from None
    item = MediaIn(
        url=links.url(image.id),
        kind="image",
        mime_type=image.media_type,
        alt=body.alt,
        size=image.size_bytes or None,
    )
    try:
        media = [MediaIn.model_validate(stored) for stored in post.media or []]
    except ValidationError:
        raise Conflict("the post's media cannot be edited through the API") from None
    marker = f"{MEDIA_PATH}{image.id}."
    at = next((i for i, m in enumerate(media) if marker in m.url), None)
    if at is None:
        media.append(item)
    else:
        media[at] = item
    try:
        change = PostUpdate(media=media)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None
    return posts.update_post(session, tenant_id, post_id, change, platforms=platforms)
