"""Content generation: a month of drafts for a brand, and one post written again."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from herald_api.schemas import Body
from herald_api.schemas.brands import MAX_BRAND_HASHTAGS, MAX_TOPICS, Hashtag, Topic, each_once
from herald_common.platforms import PLATFORMS

DEFAULT_MONTHLY_COUNT = 30
MAX_MONTHLY_COUNT = 100


def _platform(name: str) -> str:
    if name not in PLATFORMS:
        raise ValueError(
            f"{name[:40]!r} is not a platform Herald knows (one of: {', '.join(PLATFORMS)})"
        )
    return name


PlatformName = Annotated[str, AfterValidator(_platform)]


class Preferences(Body):
    """What this request adds to the brand's voice; each is optional."""

    tone: str | None = Field(default=None, min_length=1, max_length=200)
    topics: list[Topic] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TOPICS,
        description="Instead of the brand's topics.",
    )
    hashtags: list[Hashtag] | None = Field(
        default=None,
        max_length=MAX_BRAND_HASHTAGS,
        description="Preferred over the brand's; with or without `#`.",
    )
    style: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="e.g. `questions`, `tips`, `behind the scenes`, `lists`.",
    )

    _once = field_validator("hashtags", "topics")(each_once)


class GenerateBody(Body):
    """Generate a month of draft posts for the brand."""

    month: int = Field(ge=1, le=12)
    year: int = Field(ge=2000, le=2100)
    count: int = Field(default=DEFAULT_MONTHLY_COUNT, ge=1, le=MAX_MONTHLY_COUNT)
    platforms: list[PlatformName] = Field(
        min_length=1,
        max_length=len(PLATFORMS),
        description="The platforms the posts are written for ("
        + ", ".join(f"`{name}`" for name in PLATFORMS)
        + "): each post fits the strictest of them.",
    )
    preferences: Preferences = Field(default_factory=Preferences)

    @field_validator("platforms")
    @classmethod
    def _once(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))


class RegenerateBody(Body):
    """Write one part of a post again, or all of it."""

    part: Literal["hook", "body", "hashtags", "full"] = Field(
        description="`hook`, `body` or `hashtags` keeps the other parts as they are."
    )
    preferences: Preferences = Field(default_factory=Preferences)
