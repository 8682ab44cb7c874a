"""Images: asking for one, reading it back, attaching it to a post."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from herald_api.schemas import Body, Out
from herald_common.images.sizes import FORMATS, MAX_SIDE, MIN_SIDE, PRESETS, Format
from herald_common.images.spec import Style

PresetPlatform = Literal[
    "instagram", "facebook", "x", "linkedin", "threads", "tiktok", "bluesky", "mastodon"
]
assert set(PresetPlatform.__args__) == set(PRESETS)  # type: ignore[attr-defined]


def _presets() -> str:
    return "; ".join(
        f"{platform}: " + ", ".join(f"{fmt} {w}×{h}" for fmt, (w, h) in sizes.items())
        for platform, sizes in PRESETS.items()
    )


class ImageCreate(Body):
    """Render an image: the prompt set on a card in the brand's look (or drawn by the
    configured image model), in one style, at an exact size."""

    prompt: str = Field(min_length=1, max_length=1000)
    style: Style = "minimalist"
    width: int | None = Field(
        default=None,
        ge=MIN_SIDE,
        le=MAX_SIDE,
        description="Pixels; give it with `height`. Wins over `platform` and `format`.",
    )
    height: int | None = Field(default=None, ge=MIN_SIDE, le=MAX_SIDE)
    platform: PresetPlatform | None = Field(
        default=None,
        description="Take the size from this platform's preset in `format` (its first format "
        "when absent): " + _presets() + ".",
    )
    format: Format | None = Field(
        default=None,
        description="One of " + ", ".join(FORMATS) + "; without `platform`, square 1080×1080, "
        "portrait 1080×1350, landscape 1600×900, story 1080×1920. With no size at all: "
        "1080×1080.",
    )
    brand_id: str | None = Field(
        default=None, max_length=36, description="Use the brand's colours and heading font."
    )

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class ImageOut(Out):
    """A rendered image."""

    id: str
    job_id: str | None = Field(description="The job that made it.")
    brand_id: str | None
    prompt: str
    style: str
    width: int
    height: int
    media_type: str
    size_bytes: int
    sha256: str = Field(description="Of the bytes; also the content's ETag.")
    renderer: str = Field(description="`pillow` (cards) or `api` (the configured image model).")
    created_at: datetime
    url: str = Field(
        description="Public URL of the bytes, for platforms to fetch when a post goes out: "
        "signed, no key needed, valid until the image is deleted."
    )
    content_url: str = Field(description="The bytes, with an API key.")


class ImagePage(Out):
    """One page of images, newest first."""

    data: list[ImageOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class ImageListQuery(BaseModel):
    """Query parameters of the image list."""

    model_config = ConfigDict(extra="ignore")

    brand_id: str | None = Field(default=None, max_length=36)
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None


class AttachImageBody(Body):
    """Attach one of the tenant's images to a post."""

    image_id: str = Field(min_length=1, max_length=36)
    alt: str | None = Field(
        default=None, max_length=1500, description="Alt text (Bluesky requires it; may be empty)."
    )
