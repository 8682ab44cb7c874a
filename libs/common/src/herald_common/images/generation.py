"""The `image.generate` job's work: render the spec, keep the bytes, record the image.

Run through `herald_common.jobs.run_job`. A job makes at most one image: `images.job_id` is
unique, so a second run (a resent message, a retry after the row was written) finds the image
the first one made and returns it, and two runs racing to write lose nothing but the loser's
file, which it removes. Rendering happens outside any transaction: it can take seconds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from herald_common.contracts import GenerateImagePayload
from herald_common.db import session_scope
from herald_common.errors import PermanentError
from herald_common.images.cards import CardRenderer
from herald_common.images.fonts import FontBook
from herald_common.images.palette import Palette
from herald_common.images.provider import ImageApi
from herald_common.images.signing import MediaSigner
from herald_common.images.spec import ImageSpec, Renderer
from herald_common.images.storage import ImageStore
from herald_common.jobs import JobFailed, JobRun
from herald_common.models import Brand, Image
from herald_common.settings import Settings

log = logging.getLogger(__name__)


def renderer_for(settings: Settings, make_api: Callable[[], ImageApi] | None = None) -> Renderer:
    """The OpenAI-compatible endpoint when IMAGE_API_URL is set, else Pillow cards."""
    if settings.image_api_url:
        if make_api is not None:
            return make_api()
        return ImageApi(settings, *ImageApi.clients(settings))
    return CardRenderer(FontBook.for_font_dir(settings.image_font_dir))


def find_by_job(session: Session, job_id: str) -> Image | None:
    """The image job `job_id` made, without its bytes; None while it has made none."""
    return session.exec(
        select(Image).where(col(Image.job_id) == job_id).options(defer(Image.data))  # type: ignore[arg-type]
    ).first()


@dataclass
class ImageGenerator:
    """Makes the image of one `image.generate` job (see the module's docstring)."""

    engine: Engine
    renderer: Renderer
    store: ImageStore
    signer: MediaSigner
    public_url: str

    @classmethod
    def from_settings(
        cls, engine: Engine, settings: Settings, *, renderer: Renderer | None = None
    ) -> ImageGenerator:
        """A generator as the settings configure it (renderer, IMAGE_STORAGE, signing keys)."""
        return cls(
            engine=engine,
            renderer=renderer or renderer_for(settings),
            store=ImageStore.from_settings(settings),
            signer=MediaSigner.from_settings(settings),
            public_url=settings.public_url,
        )

    def __call__(self, run: JobRun) -> dict[str, Any]:
        """The job's work: the result is `{image_id, width, height, url}`."""
        payload = GenerateImagePayload.model_validate(run.payload, strict=False)
        with session_scope(self.engine) as session:
            existing = find_by_job(session, run.job_id)
            if existing is not None:
                log.info("job %s: image %s was made already", run.job_id, existing.id)
                return self._result(existing)
            spec = self._spec(session, run, payload)
        try:
            data = self.renderer.render(spec)
        except PermanentError as exc:
            raise JobFailed(exc.message) from None
        image = Image(
            tenant_id=payload.tenant_id,
            job_id=run.job_id,
            brand_id=payload.brand_id,
            prompt=payload.prompt,
            style=payload.style,
            width=payload.width,
            height=payload.height,
            media_type="image/png",
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            renderer=self.renderer.name,
        )
        stored = self.store.put(image.tenant_id, image.id, data)
        image.data, image.storage_key = stored.data, stored.storage_key
        try:
            with session_scope(self.engine) as session:
                session.add(image)
                run.progress(1, 1, session=session)
        except IntegrityError:
            # Another run of this job wrote its image first: keep that one, drop our file.
            self.store.delete(image)
            with session_scope(self.engine) as session:
                existing = find_by_job(session, run.job_id)
            if existing is None:
                raise
            return self._result(existing)
        except BaseException:
            self.store.delete(image)
            raise
        log.info(
            "job %s: image %s (%dx%d, %s, %d bytes) by %s",
            run.job_id,
            image.id,
            image.width,
            image.height,
            image.style,
            image.size_bytes,
            image.renderer,
        )
        return self._result(image)

    def _spec(self, session: Session, run: JobRun, payload: GenerateImagePayload) -> ImageSpec:
        brand = None
        if payload.brand_id is not None:
            brand = session.get(Brand, payload.brand_id)
            if brand is None or brand.tenant_id != payload.tenant_id:
                raise JobFailed(f"brand {payload.brand_id} no longer exists")
        fonts = brand.fonts if brand is not None else {}
        return ImageSpec(
            prompt=payload.prompt,
            style=payload.style,
            width=payload.width,
            height=payload.height,
            palette=Palette.from_brand(brand.colors if brand is not None else None),
            heading_font=_font_name(fonts.get("heading")),
            seed=run.job_id,
        )

    def _result(self, image: Image) -> dict[str, Any]:
        return {
            "image_id": image.id,
            "width": image.width,
            "height": image.height,
            "url": self.signer.url(self.public_url, image.id),
        }


def _font_name(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
