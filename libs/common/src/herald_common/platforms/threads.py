"""The `threads` platform: text, image, video and carousel posts through the Threads API.

Account
    settings (non-secret): `threads_user_id` (default "me": the token's own profile),
    `reply_control` (everyone | accounts_you_follow | mentioned_only | parent_post_author_only
    | followers_only; unset: Threads' default, everyone).
    credentials (secret): `access_token` (threads_basic, threads_content_publish); optional
    `expires_at` (epoch seconds) for the later token-refresh work.

Media items: {"url": "https://...", "kind": "image"|"video", "mime_type", "alt"}. Threads
fetches every URL itself, so they must be public when the post is published.

What the documentation says, and how it is used
-----------------------------------------------
* Posts (https://developers.facebook.com/docs/threads/posts): `POST /{threads-user-id}/threads`
  makes a container (`media_type` TEXT, IMAGE or VIDEO with `text`, `image_url` / `video_url`;
  for a carousel, item containers with `is_carousel_item=true` and then `media_type=CAROUSEL`
  with `children`, "limited to 20 images, videos, or a mix"), then `POST
  /{threads-user-id}/threads_publish?creation_id=…` answers `{"id": "<Threads media id>"}`.
  Meta recommends "waiting on average 30 seconds before publishing a Threads media container",
  so the adapter waits for the container's status rather than for a fixed time. "Text posts
  are limited to 500 characters. Emojis are counted as the number of UTF-8 bytes."
* Reply control (https://developers.facebook.com/docs/threads/reply-management): `reply_control`
  takes everyone, accounts_you_follow, mentioned_only, parent_post_author_only or
  followers_only; it is sent on the top container.
* Links (https://developers.facebook.com/docs/threads/create-posts/text-attachments): "Starting
  December 22, 2025, Threads posts containing more than 5 links will fail to post during the
  media creation step ... THREADS_API__LINK_LIMIT_EXCEEDED"; "All unique URLs found in the text
  field are counted as links." `validate` counts unique http(s)/www URLs.
* Container status (https://developers.facebook.com/docs/threads/troubleshooting): `GET
  /{container-id}?fields=status,error_message` answers EXPIRED, ERROR (with error_message such
  as FAILED_DOWNLOADING_VIDEO), FINISHED, IN_PROGRESS or PUBLISHED; "Publishing Does Not Return
  a Media ID → ... get the container's publishing status". This is the checkpoint flow in
  herald_common.platforms.meta: the container id is saved right after creation, and a retry or
  `lookup` reads its status (PUBLISHED → success, FINISHED → publish it, EXPIRED/ERROR → start
  again / None, any other status → OutcomeUnknown; `may_be_public` once a container is saved).
* Publishing limit (https://developers.facebook.com/docs/threads/overview#rate-limiting):
  "Threads profiles are limited to 250 API-published posts within a 24-hour moving period.
  Carousels count as a single post." → `pacing` of 250 per account per 24 h; before every
  publish `GET /{threads-user-id}/threads_publishing_limit?fields=quota_usage,config` is read
  and a used-up quota is a TransientError with `retry_after` = `quota_retry_after`.
* Media (Posts, "Media specifications"): images JPEG or PNG, at most 8 MB; videos MOV or MP4.
* Errors are Graph error bodies (meta.py). Publishing a container Threads has not finished
  registering answers code 24, subcode 4279009 "The requested resource does not exist" (seen
  in practice right after creation); it is transient here, since the container is kept.

Metrics
-------
`GET /{threads-media-id}/insights?metric=views,likes,replies,reposts,quotes,shares`
(threads_manage_insights; https://developers.facebook.com/docs/threads/insights) → views,
likes, replies, reposts, quotes, and shares in `extra`. "views" is labelled "in development";
replies of a root post count every reply, nested ones included. A profile that did not grant
threads_manage_insights is refused with a permission code: a PermanentError (a token refresh
cannot add the scope).

lookup
------
Only reads: the saved media id, else the saved container's status (PUBLISHED → found, the media
id taken from the profile's newest threads whose text matches, or the container id when that is
ambiguous), else None.

What the documentation leaves unclear
-------------------------------------
* "Emojis are counted as the number of UTF-8 bytes": `validate` counts every grapheme cluster
  that contains an emoji as its UTF-8 length and every other cluster as one character.
* Whether bare domains ("example.com") count as links: only http(s):// and www. URLs are
  counted, so a post with bare domains may still be refused when its container is created
  (a PermanentError before anything is published).
* What `threads_publish` answers for an already-published container, and for a used-up quota
  (the adapter checks the quota first; see meta.py).
* The docs show `access_token` as a parameter; the adapter sends it as a Bearer header, which
  graph.threads.net accepts like graph.facebook.com.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from herald_common.errors import PlatformError
from herald_common.platforms.base import (
    AccountRef,
    MetricsRequest,
    Pace,
    PostMetrics,
    PublishRequest,
    TokenCredentials,
    Violation,
)
from herald_common.platforms.http import graphemes
from herald_common.platforms.meta import (
    THREADS_API_VERSION,
    ContainerPlatform,
    ContainerSpec,
    account_settings,
    insights_values,
    media_kind,
    media_mime,
    metrics_failure,
    public_url,
    settings_violations,
)

MAX_TEXT = 500
MAX_LINKS = 5
MAX_CAROUSEL = 20
MAX_IMAGE_BYTES = 8 * 1024 * 1024
QUOTA_PER_DAY = 250
#: Media insights read for metrics.
INSIGHT_METRICS = ("views", "likes", "replies", "reposts", "quotes", "shares")
REPLY_CONTROLS = (
    "everyone",
    "accounts_you_follow",
    "mentioned_only",
    "parent_post_author_only",
    "followers_only",
)

_LINK = re.compile(r"(?<![\w@/])(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
_LINK_TRAILING = ".,:;!?'\")]}"


class ThreadsSettings(BaseModel):
    """The options a Threads account accepts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    threads_user_id: str = Field(default="me", min_length=1, max_length=64, pattern=r"^(me|\d+)$")
    reply_control: (
        Literal[
            "everyone",
            "accounts_you_follow",
            "mentioned_only",
            "parent_post_author_only",
            "followers_only",
        ]
        | None
    ) = None


class ThreadsCredentials(TokenCredentials):
    """The secrets the Threads adapter reads."""


def _is_emoji(cluster: str) -> bool:
    for char in cluster:
        code = ord(char)
        if (
            code >= 0x1F000
            or 0x2600 <= code <= 0x27BF
            or code in (0x200D, 0xFE0F)
            or (unicodedata.category(char) == "So" and code >= 0x2000)
        ):
            return True
    return False


def threads_length(text: str) -> int:
    """The length Threads checks against 500: emoji count their UTF-8 bytes, the rest one each."""
    return sum(
        len(cluster.encode("utf-8")) if _is_emoji(cluster) else 1 for cluster in graphemes(text)
    )


def links(text: str) -> set[str]:
    """The unique URLs in the text, as Threads counts them toward its limit of five."""
    found = set()
    for match in _LINK.finditer(text):
        url = match.group(0).rstrip(_LINK_TRAILING).lower()
        url = re.sub(r"^https?://", "", url).removeprefix("www.").rstrip("/")
        if url:
            found.add(url)
    return found


class ThreadsPlatform(ContainerPlatform):
    """Publishes to the Threads profile of each account's token."""

    name = "threads"
    pacing = (Pace("account", QUOTA_PER_DAY, 24 * 3600),)

    default_api_url = "https://graph.threads.net"
    default_api_version = THREADS_API_VERSION
    status_field = "status"
    detail_field = "error_message"
    create_edge = "threads"
    publish_edge = "threads_publish"
    limit_edge = "threads_publishing_limit"
    list_edge = "threads"
    text_field = "text"
    default_quota = QUOTA_PER_DAY
    transient_subcodes: ClassVar[Mapping[int, float | None]] = {
        4279009: None,  # 24: the container is not found yet (just created)
    }

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        violations = settings_violations(ThreadsSettings, account)
        length = threads_length(text)
        if length > MAX_TEXT:
            violations.append(
                Violation(
                    "max_characters",
                    f"counts {length} characters as Threads counts them (emoji by their UTF-8 "
                    f"bytes); Threads takes at most {MAX_TEXT}",
                )
            )
        link_count = len(links(text))
        if link_count > MAX_LINKS:
            violations.append(
                Violation(
                    "max_links",
                    f"has {link_count} different links; Threads takes at most {MAX_LINKS}",
                )
            )
        if not text.strip() and not media:
            violations.append(Violation("empty", "a Threads post needs text or media"))
        if len(media) > MAX_CAROUSEL:
            violations.append(
                Violation(
                    "max_media",
                    f"has {len(media)} media; a Threads carousel takes at most {MAX_CAROUSEL}",
                )
            )
        for index, item in enumerate(media, start=1):
            violations.extend(_media_violations(index, item))
        return violations

    # -- containers -------------------------------------------------------------------------

    def _owner(self, account: AccountRef) -> str:
        return account_settings(ThreadsSettings, self.name, account).threads_user_id

    def _containers(self, request: PublishRequest) -> ContainerSpec:
        settings = account_settings(ThreadsSettings, self.name, request.account)
        media = list(request.media)
        if len(media) <= 1:
            if not media:
                parent: dict[str, str] = {"media_type": "TEXT"}
            else:
                parent = _item_params(media[0])
                alt = media[0].get("alt") or media[0].get("description")
                if alt:
                    parent["alt_text"] = str(alt)
            children: tuple[Mapping[str, str], ...] = ()
        else:
            children = tuple({**_item_params(item), "is_carousel_item": "true"} for item in media)
            parent = {"media_type": "CAROUSEL"}
        if request.text:
            parent["text"] = request.text
        if settings.reply_control:
            parent["reply_control"] = settings.reply_control
        return ContainerSpec(children=children, parent=parent)

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        graph, _ = self._session(request.account)
        media_id = request.platform_post_id
        try:
            body = graph.get(f"{media_id}/insights", metric=",".join(INSIGHT_METRICS))
        except PlatformError as exc:
            raise metrics_failure(self.name, exc, "the post's insights") from exc
        values = insights_values(body)
        return PostMetrics(
            likes=values.get("likes"),
            reposts=values.get("reposts"),
            replies=values.get("replies"),
            quotes=values.get("quotes"),
            views=values.get("views"),
            extra={"shares": values["shares"]} if "shares" in values else {},
        )


def _item_params(item: Mapping[str, Any]) -> dict[str, str]:
    url = public_url(item) or str(item.get("url") or "")
    if media_kind(item) == "video":
        return {"media_type": "VIDEO", "video_url": url}
    return {"media_type": "IMAGE", "image_url": url}


def _media_violations(index: int, item: Mapping[str, Any]) -> list[Violation]:
    if public_url(item) is None:
        return [
            Violation(
                "media_url", f"medium {index} needs a public http(s) URL; Threads fetches it itself"
            )
        ]
    kind = media_kind(item)
    if kind is None:
        return [
            Violation(
                "media_kind",
                f"medium {index} is neither an image nor a video (give `kind` or `mime_type`)",
            )
        ]
    mime = media_mime(item)
    violations = []
    if kind == "image":
        if mime is not None and mime not in ("image/jpeg", "image/jpg", "image/png"):
            violations.append(
                Violation("image_format", f"image {index} is {mime}; Threads takes JPEG or PNG")
            )
        size = item.get("size")
        if isinstance(size, int) and size > MAX_IMAGE_BYTES:
            violations.append(
                Violation(
                    "media_size", f"image {index} is {size} bytes; Threads takes at most 8 MB"
                )
            )
    elif mime is not None and mime not in ("video/mp4", "video/quicktime"):
        violations.append(
            Violation("video_format", f"video {index} is {mime}; Threads takes MP4 or MOV")
        )
    return violations
