"""Brands: a tenant's voice (tone, topics, hashtags), look (colours, fonts), time zone, default
accounts and approval rules."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from herald_api.schemas import Body, Out
from herald_common.content.composing import normalize_hashtag, unique_hashtags

MAX_TOPICS = 50
MAX_BRAND_HASHTAGS = 30
MAX_DEFAULT_ACCOUNTS = 50
MAX_APPROVERS = 20

NotificationType = Literal["email", "whatsapp", "webhook", "both", "all"]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Enough to catch a typo; whether the mailbox exists only a sent email can tell.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _hex_color(value: str | None) -> str | None:
    if value is None:
        return None
    if not _COLOR.match(value):
        raise ValueError("must be a colour as #rrggbb, e.g. #1a2b3c")
    return value.lower()


def _blank_to_error(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be blank")
    return value.strip() if value is not None else None


def _one_hashtag(value: str) -> str:
    tag = normalize_hashtag(value)
    if tag is None:
        raise ValueError("must be one word of letters, digits or underscores, with or without #")
    return tag


def _one_topic(value: str) -> str:
    topic = " ".join(value.split())
    if not topic:
        raise ValueError("must not be blank")
    return topic


def each_once(values: list[str] | None) -> list[str] | None:
    """The list with each item once (compared without case)."""
    return None if values is None else list(unique_hashtags(values))


Hashtag = Annotated[str, Field(min_length=1, max_length=101), AfterValidator(_one_hashtag)]
Topic = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_topic)]
AccountId = Annotated[str, Field(min_length=1, max_length=36)]


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value[:64]!r} is not a known IANA time zone") from None
    return value


def http_url(value: str | None) -> str | None:
    """A webhook URL's check: http or https, with a host."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host")
    return value


class Colors(Body):
    """Brand colours by role, each `#rrggbb`."""

    primary: str | None = None
    secondary: str | None = None
    accent: str | None = None
    background: str | None = None
    text: str | None = None

    _check = field_validator("*")(_hex_color)


class Fonts(Body):
    """Font names by role (as installed where images are rendered)."""

    heading: str | None = Field(default=None, min_length=1, max_length=100)
    body: str | None = Field(default=None, min_length=1, max_length=100)


class Approver(Body):
    """Someone who may approve the brand's posts: an email, a phone number, or both."""

    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(
        default=None, max_length=16, description="E.164, e.g. `+15551234567` (for WhatsApp)."
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("must be an email address, e.g. ana@example.com")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and not _E164.match(value):
            raise ValueError("must be in E.164 form: + and the country code, e.g. +15551234567")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> Approver:
        if self.email is None and self.phone is None:
            raise ValueError("needs an email or a phone number")
        return self


_DESCRIPTIONS = {
    "hashtags": "Each with or without `#`; stored as `#tag`, each once.",
    "timezone": "IANA name, e.g. `Europe/Paris`: generated posts are timed in it.",
    "default_account_ids": "The tenant's accounts generated drafts are meant for.",
    "colors": "`primary`, `secondary`, `accent`, `background`, `text`, each `#rrggbb`; a "
    "change replaces the whole object.",
    "notification_type": "How approvers are told: `email`, `whatsapp`, `webhook`, `both` (email "
    "and WhatsApp) or `all`.",
}


class BrandCreate(Body):
    """A new brand."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    tone: str | None = Field(
        default=None, max_length=200, description="In your words, e.g. `warm and witty`."
    )
    topics: list[Topic] = Field(
        default_factory=list,
        max_length=MAX_TOPICS,
        description="What its posts are about; generation takes them in turn.",
    )
    hashtags: list[Hashtag] = Field(
        default_factory=list, max_length=MAX_BRAND_HASHTAGS, description=_DESCRIPTIONS["hashtags"]
    )
    colors: Colors = Field(default_factory=Colors, description=_DESCRIPTIONS["colors"])
    fonts: Fonts = Field(default_factory=Fonts)
    timezone: str = Field(default="UTC", max_length=64, description=_DESCRIPTIONS["timezone"])
    default_account_ids: list[AccountId] = Field(
        default_factory=list,
        max_length=MAX_DEFAULT_ACCOUNTS,
        description=_DESCRIPTIONS["default_account_ids"],
    )
    requires_approval: bool = False
    approvers: list[Approver] = Field(default_factory=list, max_length=MAX_APPROVERS)
    notification_type: NotificationType = Field(
        default="email", description=_DESCRIPTIONS["notification_type"]
    )
    webhook_url: str | None = Field(default=None, max_length=2000)

    _name = field_validator("name")(_blank_to_error)
    _once = field_validator("hashtags", "topics")(each_once)
    _zone = field_validator("timezone")(_timezone)
    _hook = field_validator("webhook_url")(http_url)


class BrandUpdate(Body):
    """Change a brand. Absent fields are left as they are; `null` clears the optional ones."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    tone: str | None = Field(default=None, max_length=200)
    topics: list[Topic] | None = Field(default=None, max_length=MAX_TOPICS)
    hashtags: list[Hashtag] | None = Field(
        default=None, max_length=MAX_BRAND_HASHTAGS, description=_DESCRIPTIONS["hashtags"]
    )
    colors: Colors | None = Field(default=None, description=_DESCRIPTIONS["colors"])
    fonts: Fonts | None = None
    timezone: str | None = Field(default=None, max_length=64, description=_DESCRIPTIONS["timezone"])
    default_account_ids: list[AccountId] | None = Field(
        default=None,
        max_length=MAX_DEFAULT_ACCOUNTS,
        description=_DESCRIPTIONS["default_account_ids"],
    )
    requires_approval: bool | None = None
    approvers: list[Approver] | None = Field(default=None, max_length=MAX_APPROVERS)
    notification_type: NotificationType | None = Field(
        default=None, description=_DESCRIPTIONS["notification_type"]
    )
    webhook_url: str | None = Field(default=None, max_length=2000)

    _name = field_validator("name")(_blank_to_error)
    _once = field_validator("hashtags", "topics")(each_once)
    _zone = field_validator("timezone")(_timezone)
    _hook = field_validator("webhook_url")(http_url)


#: Fields a PATCH may set to null (the others must be left out to stay as they are).
CLEARABLE = frozenset({"description", "tone", "webhook_url"})


class BrandOut(Out):
    """A brand."""

    id: str
    name: str
    description: str | None
    tone: str | None
    topics: list[str]
    hashtags: list[str]
    colors: dict[str, str]
    fonts: dict[str, str]
    timezone: str
    default_account_ids: list[str]
    requires_approval: bool
    approvers: list[dict[str, Any]]
    notification_type: str
    webhook_url: str | None
    version: int = Field(description="Bumped on every change.")
    created_at: datetime
    updated_at: datetime


class BrandPage(Out):
    """One page of brands, newest first."""

    data: list[BrandOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class BrandListQuery(BaseModel):
    """Query parameters of the brand list (strings from the URL, so not strict)."""

    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = None
