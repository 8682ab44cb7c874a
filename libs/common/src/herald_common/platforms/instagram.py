"""The `instagram` platform: feed posts, reels and carousels through the Instagram Graph API.

This is the "Instagram API with Facebook Login" (host graph.facebook.com, a Facebook User or
Page token with instagram_basic, instagram_content_publish, pages_read_engagement).

Account
    settings (non-secret): `ig_user_id` (required: the Instagram professional account's id).
    credentials (secret): `access_token`; optional `expires_at` (epoch seconds) for the later
    token-refresh work.

Media items: {"url": "https://...", "kind": "image"|"video", "mime_type", "alt"}. Instagram
fetches every URL itself, so they must be public when the post is published.

What the documentation says, and how it is used
-----------------------------------------------
* Content publishing (https://developers.facebook.com/docs/instagram-platform/content-publishing):
  `POST /{ig-user-id}/media` makes a container — `image_url` (+ `caption`, `alt_text`) for one
  image; `media_type=REELS` + `video_url` for one video ("all single feed videos ... will be
  shared as reels"); for a carousel, one item container per medium (`is_carousel_item=true`,
  `image_url` or `media_type=VIDEO` + `video_url`) and then `media_type=CAROUSEL` with
  `children` (comma-separated ids) and the caption. "We cURL media used in publishing attempts
  so the media must be hosted on a publicly accessible server." Then `POST
  /{ig-user-id}/media_publish` with `creation_id` answers `{"id": "<media id>"}`.
* Container status (same guide, "Troubleshooting"): `GET /{container-id}?fields=status_code`
  answers EXPIRED ("not published within 24 hours"), ERROR, FINISHED, IN_PROGRESS or
  PUBLISHED; `status` carries the error description. "If you are able to create a container for
  a video but the POST /{ig-user-id}/media_publish endpoint does not return the published media
  ID, then you can get the container's publishing status" — the basis of the checkpoint flow in
  herald_common.platforms.meta (container id saved right after it is created; a retry or
  `lookup` reads its status: PUBLISHED → success, FINISHED → publish it, EXPIRED/ERROR → start
  again / None, any other status → OutcomeUnknown; `may_be_public` once a container is saved).
* Publishing limit: "Instagram accounts are limited to 100 API-published posts within a 24-hour
  moving period. Carousels count as a single post" (content publishing guide), while the
  reference (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/content_publishing_limit)
  still says quota_total is "currently 50". `pacing` uses the guide's 100 per account per 24 h;
  before every publish `GET /{ig-user-id}/content_publishing_limit?fields=quota_usage,config`
  is read and a used-up quota (whatever `quota_total` says) is a TransientError with
  `retry_after` = `quota_retry_after`. The publish call's own refusal (code 9, subcode
  2207042, error codes reference) gets the same treatment.
* Limits (IG Media reference, `caption`): at most 2,200 characters, 30 hashtags and 20
  @-mentions; a carousel has 2 to 10 items; images must be JPEG; images are at most 8 MiB
  (error 2207004 "It should be less than 8 MiB"). There is no text-only post: at least one
  medium is required.
* Error codes (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes):
  -1/-2 "try again" (transient), 9007/2207027 "media is not ready for publishing" (transient:
  the container is kept), 9/2207042 publishing limit (transient, quota wait), 2207008 "media
  builder not found" right after creation (transient); others are permanent with Instagram's
  message. Token and rate-limit errors as in meta.py.

Metrics
-------
`GET /{ig-media-id}?fields=like_count,comments_count` (IG Media reference; `like_count` is left
out when the owner hides like counts: None then) → likes, replies; then `GET
/{ig-media-id}/insights?metric=views,reach,saved,shares` (instagram_manage_insights; IG Media
Insights reference) → views, and reach, saved and shares in `extra`. The reference deprecated
`impressions` (and `plays`, `video_views`) in v22.0 and for every version on April 21, 2025:
"views" replaced them, so impressions stay None. Insights are refused for some media (album
children, "(#10) Not enough viewers for the media to show insights", a permission not
granted): the like and comment counts are kept and the reason logged.

lookup
------
Only reads: the saved media id, else the saved container's status (PUBLISHED → found, the media
id taken from the account's newest media whose caption matches, or the container id when that
is ambiguous), else None. See herald_common.platforms.meta.

What the documentation leaves unclear
-------------------------------------
* The current publishing quota (50 or 100, see above), and when a moving-window slot frees up.
* How Instagram counts caption characters; `validate` counts Unicode code points, and counts
  hashtags as `#` + word characters and mentions as `@` + username characters, every
  occurrence.
* What `media_publish` answers for an already-published container (never asked knowingly; see
  meta.py).
* Whether `alt_text` is accepted on carousel items: it is sent for single images only, as the
  changelog announces it "for image posts".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from herald_common.errors import NeedsAuth, PermanentError, PlatformError
from herald_common.platforms.base import (
    AccountRef,
    MetricsRequest,
    Pace,
    PostMetrics,
    PublishRequest,
    TokenCredentials,
    Violation,
)
from herald_common.platforms.http import as_count
from herald_common.platforms.meta import (
    GRAPH_API_VERSION,
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

log = logging.getLogger(__name__)

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_CAROUSEL = 10
MAX_IMAGE_BYTES = 8 * 1024 * 1024
QUOTA_PER_DAY = 100
#: Media insights read for metrics ("views" replaced "impressions" in 2025).
INSIGHT_METRICS = ("views", "reach", "saved", "shares")

_HASHTAG = re.compile(r"(?<![\w&])#\w+")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9._]+")


class InstagramSettings(BaseModel):
    """The options an Instagram account accepts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ig_user_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")


class InstagramCredentials(TokenCredentials):
    """The secrets the Instagram adapter reads."""


def hashtag_count(text: str) -> int:
    """How many hashtags the caption has (every occurrence)."""
    return len(_HASHTAG.findall(text))


def mention_count(text: str) -> int:
    """How many @-mentions the caption has (every occurrence)."""
    return len(_MENTION.findall(text))


class InstagramPlatform(ContainerPlatform):
    """Publishes to the Instagram professional account named in each account's settings."""

    name = "instagram"
    pacing = (Pace("account", QUOTA_PER_DAY, 24 * 3600),)

    default_api_url = "https://graph.facebook.com"
    default_api_version = GRAPH_API_VERSION
    status_field = "status_code"
    detail_field = "status"
    create_edge = "media"
    publish_edge = "media_publish"
    limit_edge = "content_publishing_limit"
    list_edge = "media"
    text_field = "caption"
    default_quota = QUOTA_PER_DAY
    transient_subcodes: ClassVar[Mapping[int, float | None]] = {
        2207027: None,  # 9007: the media is not ready for publishing
        2207008: None,  # 24: media builder not found (just created)
    }
    quota_subcodes = frozenset({2207042})  # 9: publishing limit reached

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        violations = settings_violations(InstagramSettings, account)
        if len(text) > MAX_CAPTION:
            violations.append(
                Violation(
                    "max_characters",
                    f"the caption has {len(text)} characters; Instagram takes at most "
                    f"{MAX_CAPTION}",
                )
            )
        hashtags = hashtag_count(text)
        if hashtags > MAX_HASHTAGS:
            violations.append(
                Violation(
                    "max_hashtags",
                    f"the caption has {hashtags} hashtags; Instagram takes at most {MAX_HASHTAGS}",
                )
            )
        mentions = mention_count(text)
        if mentions > MAX_MENTIONS:
            violations.append(
                Violation(
                    "max_mentions",
                    f"the caption has {mentions} @-mentions; Instagram takes at most "
                    f"{MAX_MENTIONS}",
                )
            )
        if not media:
            violations.append(
                Violation("media_required", "Instagram posts need at least one image or video")
            )
        if len(media) > MAX_CAROUSEL:
            violations.append(
                Violation(
                    "max_media",
                    f"has {len(media)} media; an Instagram carousel takes at most {MAX_CAROUSEL}",
                )
            )
        for index, item in enumerate(media, start=1):
            violations.extend(_media_violations(index, item))
        return violations

    # -- containers -------------------------------------------------------------------------

    def _owner(self, account: AccountRef) -> str:
        return account_settings(InstagramSettings, self.name, account).ig_user_id

    def _containers(self, request: PublishRequest) -> ContainerSpec:
        media = list(request.media)
        if len(media) == 1:
            item = media[0]
            if media_kind(item) == "video":
                parent = {"media_type": "REELS", "video_url": _url(item)}
            else:
                parent = {"image_url": _url(item)}
                alt = item.get("alt") or item.get("description")
                if alt:
                    parent["alt_text"] = str(alt)
            if request.text:
                parent["caption"] = request.text
            return ContainerSpec(children=(), parent=parent)
        children = tuple(
            {"is_carousel_item": "true", "media_type": "VIDEO", "video_url": _url(item)}
            if media_kind(item) == "video"
            else {"is_carousel_item": "true", "image_url": _url(item)}
            for item in media
        )
        parent = {"media_type": "CAROUSEL"}
        if request.text:
            parent["caption"] = request.text
        return ContainerSpec(children=children, parent=parent)

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        graph, _ = self._session(request.account)
        media_id = request.platform_post_id
        try:
            media = graph.get(media_id, fields="like_count,comments_count")
        except PlatformError as exc:
            raise metrics_failure(self.name, exc, "the media's counts") from exc
        insights: dict[str, int] = {}
        try:
            insights = insights_values(
                graph.get(f"{media_id}/insights", metric=",".join(INSIGHT_METRICS))
            )
        except (PermanentError, NeedsAuth) as exc:
            log.info("instagram: no insights for media %s: %s", media_id, exc.message)
        return PostMetrics(
            likes=as_count(media.get("like_count")),
            replies=as_count(media.get("comments_count")),
            views=insights.get("views"),
            extra={k: insights[k] for k in INSIGHT_METRICS if k != "views" and k in insights},
        )


def _url(item: Mapping[str, Any]) -> str:
    return public_url(item) or str(item.get("url") or "")


def _media_violations(index: int, item: Mapping[str, Any]) -> list[Violation]:
    if public_url(item) is None:
        return [
            Violation(
                "media_url",
                f"medium {index} needs a public http(s) URL; Instagram fetches media itself",
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
    violations = []
    if kind == "image":
        mime = media_mime(item)
        if mime is not None and mime not in ("image/jpeg", "image/jpg"):
            violations.append(
                Violation("image_format", f"image {index} is {mime}; Instagram takes JPEG only")
            )
        size = item.get("size")
        if isinstance(size, int) and size > MAX_IMAGE_BYTES:
            violations.append(
                Violation(
                    "media_size", f"image {index} is {size} bytes; Instagram takes at most 8 MiB"
                )
            )
    return violations
