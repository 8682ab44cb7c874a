"""The `tiktok` platform: Direct Post of a video or a photo post through the Content Posting API.

Account
    handle: the creator's TikTok username (used for the post URL).
    settings (non-secret, TikTokSettings): `privacy_level` (required, no default, as TikTok's UX
    guidelines ask: PUBLIC_TO_EVERYONE | MUTUAL_FOLLOW_FRIENDS | FOLLOWER_OF_CREATOR |
    SELF_ONLY), `disable_comment`, `disable_duet`, `disable_stitch`, `brand_content_toggle`,
    `brand_organic_toggle`, `is_aigc`, `video_cover_timestamp_ms`, `auto_add_music` (photos).
    credentials (secret, TikTokCredentials): `access_token` (a user access token with the
    `video.publish` scope); optionally `refresh_token`, `expires_at`, `open_id`.

Media items: exactly one video, or 1-35 images, each {"url": "https://..."} on a domain or URL
prefix verified for the app (TikTok pulls it: PULL_FROM_URL), with optional "kind", "mime_type",
"size" (bytes) and, for a video, "duration" (seconds).

What the documentation says, and how it is used
-----------------------------------------------
* Every answer is the envelope {"data": {...}, "error": {"code", "message", "log_id"}}; "Any
  code other than ok indicates the request did not succeed"
  (https://developers.tiktok.com/doc/tiktok-api-v2-error-handling). Errors are read from the
  envelope first (also on HTTP 200), then from the HTTP status.
* Query Creator Info, POST /v2/post/publish/creator_info/query/ (20 requests/minute per token,
  https://developers.tiktok.com/doc/content-posting-api-reference-query-creator-info):
  `privacy_level_options`, `comment_disabled`, `duet_disabled`, `stitch_disabled`,
  `max_video_post_duration_sec`. `publish` asks it before every new post: a privacy level not
  among the options, or a video (of known duration) longer than the creator may post, is a
  PermanentError before anything is created; a comment/duet/stitch the creator has turned off
  is sent as disabled.
* Direct Post, POST /v2/post/publish/video/init/ (6 requests/minute per token,
  https://developers.tiktok.com/doc/content-posting-api-reference-direct-post): `post_info`
  {title (the post text, at most 2,200 UTF-16 code units), privacy_level, disable_*,
  video_cover_timestamp_ms, brand_content_toggle, brand_organic_toggle, is_aigc} and
  `source_info` {source: PULL_FROM_URL, video_url} → `data.publish_id`. Its errors: 400
  invalid_param; 403 spam_risk_too_many_posts ("The daily post cap from the API is reached for
  the current user"), spam_risk_user_banned_from_posting, reached_active_user_cap,
  unaudited_client_can_only_post_to_private_accounts, url_ownership_unverified,
  privacy_level_option_mismatch; 401 access_token_invalid, scope_not_authorized; 429
  rate_limit_exceeded; 5xx "TikTok server or network error. Try again later."
* Photo posts, POST /v2/post/publish/content/init/ with media_type PHOTO and post_mode
  DIRECT_POST (https://developers.tiktok.com/doc/content-posting-api-reference-photo-post):
  `source_info` {source: PULL_FROM_URL (the only source for photos), photo_images (up to 35
  URLs), photo_cover_index}, `post_info` {title (at most 90 UTF-16 units), description (at most
  4,000), privacy_level, disable_comment, auto_add_music, brand_*}. The post text goes in
  `description`; no title is sent. Images: JPEG or WebP, at most 20 MB each
  (https://developers.tiktok.com/doc/content-posting-api-media-transfer-guide); videos: MP4,
  MOV or WebM, at most 4 GB.
* Get Post Status, POST /v2/post/publish/status/fetch/ {publish_id} (30 requests/minute per
  token, https://developers.tiktok.com/doc/content-posting-api-reference-get-video-status):
  `status` PROCESSING_UPLOAD | PROCESSING_DOWNLOAD | SEND_TO_USER_INBOX | PUBLISH_COMPLETE |
  FAILED, `fail_reason`, `publicaly_available_post_id` (TikTok's spelling; a list of ids, given
  only once a public post passed moderation). "A time limit is not guaranteed": moderation
  "usually finishes within one minute", "in some cases ... a few hours". `publish` polls with
  an injectable sleep every `poll_interval` seconds until `poll_timeout`, then raises
  StillProcessing (a wait that spends no attempt, `retry_after` the poll interval but at least
  STILL_PROCESSING_WAIT); the retry continues from the checkpoint.
* FAILED: `internal` (TikTok's own failure) and `video_pull_failed` / `photo_pull_failed` (TikTok
  could not fetch the media, often a passing outage of the media host) are TransientErrors;
  `spam_risk_too_many_posts` RateLimited an hour out; `auth_removed` NeedsAuth; every other
  reason (file_format_check_failed, duration_check_failed, frame_rate_check_failed,
  picture_size_check_failed, spam_risk_text, spam_risk, publish_cancelled, ...) a
  PermanentError naming the reason.
* Rate limits (https://developers.tiktok.com/doc/tiktok-api-v2-rate-limit): "a one minute sliding
  window"; over it, HTTP 429 with rate_limit_exceeded. No reset header is documented, so
  `retry_after` is Retry-After when sent, else 60 s. The daily caps (spam_risk_too_many_posts,
  reached_active_user_cap) reset within a day: RateLimited with retry_after one hour.
* Direct Post limits (https://developers.tiktok.com/doc/content-sharing-guidelines): the cap is
  "around 15 posts per day" per creator account, shared by every app that posts for it;
  unaudited clients post SELF_ONLY to private accounts only, at most 5 users a day. Branded
  content cannot be private (SELF_ONLY), so `validate` refuses that pair.

Never two posts for one target (the checkpoint)
-----------------------------------------------
init is the only call that creates anything. Before it, `publish` saves the checkpoint
{"init": "sent"}; when init answers with a publish_id, it saves {"publish_id", "media_type"}
at once; when TikTok answers with an error envelope under a 2xx or 4xx status (other than 408:
TikTok itself refused, so nothing was created), or the connection could not even be opened,
it clears the checkpoint. A try that finds a publish_id fetches its status first and continues
polling it; it starts a new post only when that one FAILED. An init whose answer was lost
(timed out or cut after the request was sent, unreadable, or a 5xx / 408 / 4xx without
TikTok's error envelope, which a gateway may send after TikTok accepted the request) leaves
{"init": "sent"} and raises OutcomeUnknown (the target becomes `unknown`) asking a person to
check the account: TikTok may have created the post. A later `publish` that still finds that
marker is a person's retry (Herald never retries such a target on its own), so it posts again.
`may_be_public` is True while the marker or a publish_id is saved.

lookup (reconciliation)
-----------------------
Only reads. With a checkpoint publish_id: status/fetch tells; PUBLISH_COMPLETE → the result,
FAILED → None, still processing → TransientError (reconciliation asks again later; the answer
is not known yet, and it will be). With the {"init": "sent"} marker and no publish_id → a
worker stopped between sending init and saving its answer: TikTok may have created a post that
nothing can find (there is no "find by key" call), so LookupUnsupported and a person decides.
With an empty checkpoint → None: the marker is saved (durably, by the publisher) before init,
so nothing was sent.

Metrics
-------
Query Videos, POST /v2/video/query/?fields=id,like_count,comment_count,share_count,view_count
with {"filters": {"video_ids": [...]}} (scope video.list, at most 20 ids;
https://developers.tiktok.com/doc/tiktok-api-v2-video-query, Video Object fields) → likes,
replies (comments), reposts (shares), views. It needs the video id: a post published before
moderation made it public carries its publish_id instead, so status/fetch is asked first for
its `publicaly_available_post_id`; while there is none (moderation, or a post only its creator
sees) the read raises Waiting, and the next pull asks again. A video that is not the creator's
any more (deleted) is left out of `videos`: a PermanentError, as is a token without the
video.list scope (scope_not_authorized: a refresh cannot add it).

What the documentation leaves unclear
-------------------------------------
* Whether PUBLISH_COMPLETE comes before moderation for public posts, and whether non-public
  posts ever get `publicaly_available_post_id`: PUBLISH_COMPLETE is taken as published; the
  result's id is the first public post id, else the publish_id (and then no URL).
* The HTTP status and code of status/fetch for an unknown publish_id, and of creator_info's
  spam_risk answers (seen both as 200 and 403): errors are read from the envelope either way.
* The full fail_reason table (which reasons are the developer's, the creator's or TikTok's): the
  transient ones above are a judgement; anything unknown is permanent with TikTok's words.
* The exact daily Direct Post cap ("around 15", "may vary"): pacing uses 15 a day.
* Which URL shape TikTok prefers for photo posts: https://www.tiktok.com/@<handle>/photo/<id>.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from herald_common.errors import (
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    PlatformError,
    RateLimited,
    StillProcessing,
    TransientError,
    Waiting,
)
from herald_common.platforms.base import (
    AccountRef,
    LookupUnsupported,
    MetricsRequest,
    Pace,
    Platform,
    PostMetrics,
    PublishRequest,
    PublishResult,
    Violation,
)
from herald_common.platforms.http import (
    as_count,
    retry_after_seconds,
    status_error,
    transport_error,
)

DEFAULT_API_URL = "https://open.tiktokapis.com"
CREATOR_INFO_PATH = "/v2/post/publish/creator_info/query/"
VIDEO_INIT_PATH = "/v2/post/publish/video/init/"
CONTENT_INIT_PATH = "/v2/post/publish/content/init/"
STATUS_PATH = "/v2/post/publish/status/fetch/"
VIDEO_QUERY_PATH = "/v2/video/query/"
VIDEO_FIELDS = "id,like_count,comment_count,share_count,view_count"

PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY")
PrivacyLevel = Literal[
    "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"
]

MAX_VIDEO_TITLE = 2200  # UTF-16 code units ("runes")
MAX_PHOTO_DESCRIPTION = 4000
MAX_PHOTO_TITLE = 90
MAX_IMAGES = 35
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_VIDEO_BYTES = 4 * 1024 * 1024 * 1024
IMAGE_TYPES = ("image/jpeg", "image/webp")
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
_IMAGE_EXTENSIONS = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
_OTHER_IMAGE_EXTENSIONS = {"png", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif", "svg"}
_VIDEO_EXTENSIONS = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
_OTHER_VIDEO_EXTENSIONS = {"m4v", "avi", "mkv", "wmv", "flv", "mpeg", "mpg", "3gp"}

COMPLETE = "PUBLISH_COMPLETE"
FAILED = "FAILED"
#: An init was sent and its answer not yet stored (see the module docstring).
INIT_SENT = "sent"

RATE_LIMIT_WAIT = 60.0  # the documented window is one minute, sliding
DAILY_CAP_WAIT = 3600.0
#: The least a try waits to look again at a post still processing after its poll timeout.
STILL_PROCESSING_WAIT = 30.0
_AUTH_CODES = frozenset({"access_token_invalid", "scope_not_authorized", "scope_permission_missed"})
_DAILY_CAP_CODES = frozenset({"spam_risk_too_many_posts", "reached_active_user_cap"})
_TRANSIENT_FAIL_REASONS = frozenset({"internal", "video_pull_failed", "photo_pull_failed"})
#: Connection failures that prove the request never reached TikTok.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class TikTokSettings(BaseModel):
    """The options a TikTok account accepts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # No default: TikTok's UX guidelines require the creator to choose it.
    privacy_level: PrivacyLevel
    disable_comment: bool = False
    disable_duet: bool = False
    disable_stitch: bool = False
    brand_content_toggle: bool = False
    brand_organic_toggle: bool = False
    is_aigc: bool = False
    video_cover_timestamp_ms: int | None = Field(default=None, ge=0, le=2**31 - 1)
    auto_add_music: bool = False

    @model_validator(mode="after")
    def _branded_content_is_not_private(self) -> TikTokSettings:
        if self.brand_content_toggle and self.privacy_level == "SELF_ONLY":
            raise ValueError("branded content (brand_content_toggle) cannot be SELF_ONLY")
        return self


class TikTokCredentials(BaseModel):
    """The secrets a TikTok account holds: a user access token with `video.publish`."""

    model_config = ConfigDict(extra="forbid")

    access_token: str = Field(min_length=1)
    refresh_token: str | None = None
    expires_at: datetime | float | None = None
    refresh_expires_at: datetime | float | None = None
    open_id: str | None = None
    scope: str | None = None


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as TikTok counts its "runes"."""
    return len(text.encode("utf-16-le")) // 2


def media_kind(item: Mapping[str, Any]) -> str | None:
    """ "image" or "video": the item's own kind, else from its MIME type or URL extension."""
    kind = item.get("kind")
    if kind in ("image", "video"):
        return str(kind)
    mime = str(item.get("mime_type") or item.get("content_type") or "")
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("video/"):
        return "video"
    extension = _extension(item)
    if extension in _IMAGE_EXTENSIONS or extension in _OTHER_IMAGE_EXTENSIONS:
        return "image"
    if extension in _VIDEO_EXTENSIONS or extension in _OTHER_VIDEO_EXTENSIONS:
        return "video"
    return None


def _extension(item: Mapping[str, Any]) -> str:
    url = item.get("url")
    if not isinstance(url, str) or not url:
        return ""
    try:
        tail = httpx.URL(url).path.rsplit("/", 1)[-1]
    except httpx.InvalidURL:
        return ""
    return tail.rsplit(".", 1)[-1].lower() if "." in tail else ""


def _mime(item: Mapping[str, Any]) -> str | None:
    mime = item.get("mime_type") or item.get("content_type")
    if mime:
        return str(mime).split(";", 1)[0].strip().lower()
    extension = _extension(item)
    if extension in _IMAGE_EXTENSIONS:
        return _IMAGE_EXTENSIONS[extension]
    if extension in _VIDEO_EXTENSIONS:
        return _VIDEO_EXTENSIONS[extension]
    if extension:
        return f"?/{extension}"
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class TikTokPlatform(Platform):
    """Direct Posts videos (and photo posts) by URL, continuing earlier work from the checkpoint."""

    name = "tiktok"
    pacing = (
        # video/init and content/init: "Each user access_token is limited to 6 requests per minute"
        Pace("account", 6, 60),
        # content sharing guidelines: around 15 Direct Posts per creator account per day
        Pace("account", 15, 24 * 3600),
    )

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_url: str = DEFAULT_API_URL,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        poll_interval: float = 6.0,
        poll_timeout: float = 120.0,
    ) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._sleep = sleep
        self._monotonic = monotonic
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        violations = self._settings_violations(account)
        kinds = [media_kind(item) for item in media]
        videos = kinds.count("video")
        images = kinds.count("image")
        if not media:
            violations.append(
                Violation("media_required", "TikTok posts need one video or 1-35 images")
            )
        elif videos and images:
            violations.append(
                Violation("mixed_media", "TikTok takes one video or images, not both in one post")
            )
        elif videos > 1:
            violations.append(
                Violation("one_video", f"has {videos} videos; TikTok takes exactly one per post")
            )
        elif images > MAX_IMAGES:
            violations.append(
                Violation("max_images", f"has {images} images; TikTok takes at most {MAX_IMAGES}")
            )
        photo = bool(media) and videos == 0
        length = utf16_length(text)
        if photo and length > MAX_PHOTO_DESCRIPTION:
            violations.append(
                Violation(
                    "max_description",
                    f"is {length} UTF-16 characters long; a TikTok photo post description takes "
                    f"at most {MAX_PHOTO_DESCRIPTION}",
                )
            )
        elif not photo and length > MAX_VIDEO_TITLE:
            violations.append(
                Violation(
                    "max_title",
                    f"is {length} UTF-16 characters long; a TikTok video caption takes at most "
                    f"{MAX_VIDEO_TITLE}",
                )
            )
        for number, (item, kind) in enumerate(zip(media, kinds, strict=True), start=1):
            violations += self._item_violations(number, item, kind)
        return violations

    @staticmethod
    def _settings_violations(account: AccountRef) -> list[Violation]:
        try:
            TikTokSettings.model_validate(dict(account.settings))
        except ValidationError as exc:
            violations = []
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "settings"
                if field == "privacy_level" and error["type"] == "missing":
                    reason = (
                        "the account's settings need privacy_level (one of "
                        + ", ".join(PRIVACY_LEVELS)
                        + "); TikTok has no default"
                    )
                else:
                    reason = f"account setting {field}: {error['msg']}"
                violations.append(
                    Violation(field if field == "privacy_level" else "settings", reason)
                )
            return violations
        return []

    @staticmethod
    def _item_violations(number: int, item: Mapping[str, Any], kind: str | None) -> list[Violation]:
        found: list[Violation] = []
        url = item.get("url")
        if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
            found.append(
                Violation(
                    "media_url",
                    f"item {number} needs an http(s) URL: TikTok pulls media from a verified "
                    "domain (uploaded bytes are not supported)",
                )
            )
        if kind is None:
            found.append(
                Violation(
                    "media_kind",
                    f"item {number}: cannot tell whether it is an image or a video; give its "
                    "kind or mime_type",
                )
            )
            return found
        mime = _mime(item)
        size = _number(item.get("size"))
        if kind == "image":
            if mime is not None and mime not in IMAGE_TYPES:
                found.append(
                    Violation(
                        "image_format",
                        f"image {number} is {mime.removeprefix('?/')}; TikTok photo posts take "
                        "JPEG or WebP",
                    )
                )
            if size is not None and size > MAX_IMAGE_BYTES:
                found.append(
                    Violation(
                        "image_size",
                        f"image {number} is {int(size):,} bytes; TikTok takes at most 20 MB",
                    )
                )
        else:
            if mime is not None and mime not in VIDEO_TYPES:
                found.append(
                    Violation(
                        "video_format",
                        f"the video is {mime.removeprefix('?/')}; TikTok takes MP4, MOV or WebM",
                    )
                )
            if size is not None and size > MAX_VIDEO_BYTES:
                found.append(
                    Violation(
                        "video_size", f"the video is {int(size):,} bytes; TikTok takes at most 4 GB"
                    )
                )
        return found

    # -- publish ----------------------------------------------------------------------------

    def may_be_public(self, checkpoint: Mapping[str, Any]) -> bool:
        """Whether an init went out: its marker (answer unknown) or its publish_id is saved."""
        publish_id = checkpoint.get("publish_id")
        return checkpoint.get("init") == INIT_SENT or bool(
            isinstance(publish_id, str) and publish_id
        )

    def publish(self, request: PublishRequest) -> PublishResult:
        account = request.account
        token = self._token(account)
        settings = self._settings(account)
        publish_id = request.checkpoint.get("publish_id")
        if isinstance(publish_id, str) and publish_id:
            media_type = str(request.checkpoint.get("media_type") or "video")
            data = self._status(token, publish_id)
            if data.get("status") != FAILED:
                return self._await(account, token, publish_id, media_type, data)
            # That post failed on TikTok's side: nothing of it is visible, so start afresh.
        photo = self._is_photo(request.media)
        creator = self._creator_info(token)
        body = (
            self._photo_body(request, settings, creator)
            if photo
            else self._video_body(request, settings, creator)
        )
        media_type = "photo" if photo else "video"
        publish_id = self._init(
            request, token, CONTENT_INIT_PATH if photo else VIDEO_INIT_PATH, body, media_type
        )
        return self._await(account, token, publish_id, media_type, None)

    @staticmethod
    def _is_photo(media: tuple[Mapping[str, Any], ...]) -> bool:
        kinds = [media_kind(item) for item in media]
        if kinds == ["video"]:
            return False
        if kinds and all(kind == "image" for kind in kinds) and len(kinds) <= MAX_IMAGES:
            return True
        raise PermanentError("tiktok: a post needs exactly one video or 1-35 images")

    def _video_body(
        self, request: PublishRequest, settings: TikTokSettings, creator: Mapping[str, Any]
    ) -> dict[str, Any]:
        video = request.media[0]
        self._check_privacy(settings, creator)
        duration = _number(video.get("duration"))
        limit = _number(creator.get("max_video_post_duration_sec"))
        if duration is not None and limit is not None and duration > limit:
            raise PermanentError(
                f"tiktok: the video is {duration:g} s long; this creator may post at most "
                f"{limit:g} s"
            )
        post_info: dict[str, Any] = {
            "title": request.text,
            "privacy_level": settings.privacy_level,
            "disable_comment": settings.disable_comment or bool(creator.get("comment_disabled")),
            "disable_duet": settings.disable_duet or bool(creator.get("duet_disabled")),
            "disable_stitch": settings.disable_stitch or bool(creator.get("stitch_disabled")),
            "brand_content_toggle": settings.brand_content_toggle,
            "brand_organic_toggle": settings.brand_organic_toggle,
            "is_aigc": settings.is_aigc,
        }
        if settings.video_cover_timestamp_ms is not None:
            post_info["video_cover_timestamp_ms"] = settings.video_cover_timestamp_ms
        return {
            "post_info": post_info,
            "source_info": {"source": "PULL_FROM_URL", "video_url": str(video.get("url"))},
        }

    def _photo_body(
        self, request: PublishRequest, settings: TikTokSettings, creator: Mapping[str, Any]
    ) -> dict[str, Any]:
        self._check_privacy(settings, creator)
        return {
            "post_info": {
                "description": request.text,
                "privacy_level": settings.privacy_level,
                "disable_comment": settings.disable_comment
                or bool(creator.get("comment_disabled")),
                "auto_add_music": settings.auto_add_music,
                "brand_content_toggle": settings.brand_content_toggle,
                "brand_organic_toggle": settings.brand_organic_toggle,
            },
            "source_info": {
                "source": "PULL_FROM_URL",
                "photo_cover_index": 0,
                "photo_images": [str(item.get("url")) for item in request.media],
            },
            "post_mode": "DIRECT_POST",
            "media_type": "PHOTO",
        }

    @staticmethod
    def _check_privacy(settings: TikTokSettings, creator: Mapping[str, Any]) -> None:
        options = creator.get("privacy_level_options")
        if isinstance(options, list) and settings.privacy_level not in options:
            raise PermanentError(
                f"tiktok: privacy level {settings.privacy_level} is not one this creator can "
                f"use now (TikTok offers {', '.join(map(str, options)) or 'none'}); change the "
                "account's privacy_level setting"
            )

    def _init(
        self,
        request: PublishRequest,
        token: str,
        path: str,
        body: dict[str, Any],
        media_type: str,
    ) -> str:
        # From here until the answer is stored, TikTok may create a post: say so first.
        request.save_checkpoint({"init": INIT_SENT, "media_type": media_type})
        try:
            response = self._client.post(
                self._api_url + path, headers=self._headers(token), json=body
            )
        except _NOT_SENT as exc:
            request.save_checkpoint({})
            raise transport_error(self.name, exc) from exc
        except httpx.TransportError as exc:
            raise self._unanswered(exc.__class__.__name__) from exc
        envelope = _envelope(response)
        code = _code(envelope)
        data = envelope.get("data") if envelope else None
        publish_id = data.get("publish_id") if isinstance(data, Mapping) else None
        if response.is_success and code == "ok" and isinstance(publish_id, str) and publish_id:
            request.save_checkpoint({"publish_id": publish_id, "media_type": media_type})
            return publish_id
        status = response.status_code
        if code in (None, "ok") or status >= 500 or status == 408:
            # A 2xx whose meaning cannot be read, a server or gateway error (which may come
            # after TikTok accepted the request), or an answer without TikTok's error envelope:
            # a post may exist.
            if response.is_success:
                what = f"an unreadable answer (HTTP {status})"
            elif status >= 500 or status == 408:
                what = f"HTTP {status}" + (f" {code}" if code else "") + ", a server error"
            else:
                what = f"HTTP {status} without TikTok's error envelope"
            raise self._unanswered(what)
        # TikTok itself answered with an error (2xx or 4xx with its envelope): nothing created.
        request.save_checkpoint({})
        raise self._error(response, envelope)

    def _unanswered(self, what: str) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"tiktok: the request that creates the post got no usable answer ({what}); TikTok "
            "may have created the post, so it is not sent again automatically: check the "
            "TikTok account, and retry only if the post is not there"
        )

    def _await(
        self,
        account: AccountRef,
        token: str,
        publish_id: str,
        media_type: str,
        data: Mapping[str, Any] | None,
    ) -> PublishResult:
        """Poll status/fetch until the post is complete or failed, or the time is up."""
        deadline = self._monotonic() + self._poll_timeout
        while True:
            if data is None:
                data = self._status(token, publish_id)
            status = data.get("status")
            if status == COMPLETE:
                return self._result(account, publish_id, media_type, data)
            if status == FAILED:
                raise self._failure(publish_id, data)
            if self._monotonic() + self._poll_interval > deadline:
                # TikTok accepted the post and is still on it: a wait, not a failed attempt.
                raise StillProcessing(
                    f"tiktok: post {publish_id} was still {status or 'processing'} after "
                    f"{self._poll_timeout:g} s; the next try continues it",
                    http_status=200,
                    retry_after=max(self._poll_interval, STILL_PROCESSING_WAIT),
                )
            self._sleep(self._poll_interval)
            data = None

    def _result(
        self, account: AccountRef, publish_id: str, media_type: str, data: Mapping[str, Any]
    ) -> PublishResult:
        ids = data.get("publicaly_available_post_id") or data.get("publicly_available_post_id")
        post_id = str(ids[0]) if isinstance(ids, list) and ids else None
        if post_id is None:
            return PublishResult(platform_post_id=publish_id, url=None, http_status=200)
        handle = account.handle.lstrip("@")
        kind = "photo" if media_type == "photo" else "video"
        return PublishResult(
            platform_post_id=post_id,
            url=f"https://www.tiktok.com/@{handle}/{kind}/{post_id}",
            http_status=200,
        )

    @staticmethod
    def _failure(publish_id: str, data: Mapping[str, Any]) -> PlatformError:
        reason = str(data.get("fail_reason") or "no reason given")
        message = f"tiktok: post {publish_id} failed: {reason}"
        if reason in _TRANSIENT_FAIL_REASONS:
            return TransientError(message, http_status=200)
        if reason == "spam_risk_too_many_posts":
            return RateLimited(
                message + " (the creator's daily post cap)",
                http_status=200,
                retry_after=DAILY_CAP_WAIT,
            )
        if reason == "auth_removed":
            return NeedsAuth(message + " (the creator removed Herald's access)", http_status=200)
        return PermanentError(message, http_status=200)

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        checkpoint = request.checkpoint
        publish_id = checkpoint.get("publish_id")
        if not (isinstance(publish_id, str) and publish_id):
            if checkpoint.get("init") == INIT_SENT:
                raise LookupUnsupported(
                    "tiktok: an earlier try sent the post to TikTok and stopped before storing "
                    "its answer; TikTok offers no way to find that post"
                )
            return None  # the marker is saved before init: nothing was sent
        token = self._token(request.account)
        data = self._status(token, publish_id)
        status = data.get("status")
        if status == COMPLETE:
            media_type = str(checkpoint.get("media_type") or "video")
            return self._result(request.account, publish_id, media_type, data)
        if status == FAILED:
            return None
        raise TransientError(
            f"tiktok: post {publish_id} is still {status or 'processing'}; ask again later",
            http_status=200,
            retry_after=self._poll_interval,
        )

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        token = self._token(request.account)
        try:
            video_id = self._video_id(token, request)
            data = self._call(
                token,
                f"{VIDEO_QUERY_PATH}?fields={VIDEO_FIELDS}",
                {"filters": {"video_ids": [video_id]}},
            )
        except NeedsAuth as exc:
            if "scope" not in exc.message:
                raise
            raise PermanentError(
                f"{exc.message}; reading a video's counts needs the video.list scope: connect "
                "the account again granting it",
                http_status=exc.http_status,
            ) from exc
        video = next(
            (
                v
                for v in data.get("videos") or ()
                if isinstance(v, Mapping) and str(v.get("id")) == video_id
            ),
            None,
        )
        if video is None:
            raise PermanentError(
                f"tiktok: video {video_id} is not among the creator's videos (deleted, or made "
                "private)",
                http_status=200,
            )
        return PostMetrics(
            likes=as_count(video.get("like_count")),
            replies=as_count(video.get("comment_count")),
            reposts=as_count(video.get("share_count")),
            views=as_count(video.get("view_count")),
        )

    def _video_id(self, token: str, request: MetricsRequest) -> str:
        """The published video's id: the post id when it is one, else the public id
        status/fetch gives for the publish_id (Waiting while it gives none)."""
        post_id = request.platform_post_id
        if post_id.isdigit():
            return post_id
        saved = request.checkpoint.get("publish_id")
        publish_id = saved if isinstance(saved, str) and saved else post_id
        data = self._status(token, publish_id)
        ids = data.get("publicaly_available_post_id") or data.get("publicly_available_post_id")
        if isinstance(ids, list) and ids:
            return str(ids[0])
        raise Waiting(
            f"tiktok: post {publish_id} has no public video id yet ({data.get('status')}); "
            "TikTok gives one once a public post has passed moderation",
            http_status=200,
        )

    # -- HTTP -------------------------------------------------------------------------------

    def _token(self, account: AccountRef) -> str:
        token = account.credentials.get("access_token")
        if not token:
            raise NeedsAuth("tiktok: the account has no access token; connect it again")
        return str(token)

    @staticmethod
    def _settings(account: AccountRef) -> TikTokSettings:
        try:
            return TikTokSettings.model_validate(dict(account.settings))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise PermanentError(
                f"tiktok: the account's settings are not valid ({problems})"
            ) from None

    @staticmethod
    def _headers(token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=UTF-8",
        }

    def _call(self, token: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
        """A read call (creator_info, status/fetch): its `data`, or the error it maps to."""
        try:
            if body is None:
                response = self._client.post(self._api_url + path, headers=self._headers(token))
            else:
                response = self._client.post(
                    self._api_url + path, headers=self._headers(token), json=dict(body)
                )
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc
        envelope = _envelope(response)
        data = envelope.get("data") if envelope else None
        if response.is_success and _code(envelope) == "ok" and isinstance(data, dict):
            return data
        if response.is_success and _code(envelope) in (None, "ok"):
            raise TransientError(
                f"tiktok: an unreadable answer from {path} (HTTP {response.status_code})",
                http_status=response.status_code,
            )
        raise self._error(response, envelope)

    def _creator_info(self, token: str) -> dict[str, Any]:
        return self._call(token, CREATOR_INFO_PATH, None)

    def _status(self, token: str, publish_id: str) -> dict[str, Any]:
        return self._call(token, STATUS_PATH, {"publish_id": publish_id})

    def _error(self, response: httpx.Response, envelope: Mapping[str, Any] | None) -> PlatformError:
        status = response.status_code
        code = _code(envelope)
        if code is None or code == "ok":
            return status_error(self.name, response)
        error = envelope.get("error") if envelope else None
        message = str(error.get("message") or "") if isinstance(error, Mapping) else ""
        log_id = str(error.get("log_id") or "") if isinstance(error, Mapping) else ""
        text = f"tiktok: {code}" + (f": {message}" if message else "")
        text += f" (HTTP {status}" + (f", log_id {log_id})" if log_id else ")")
        if code in _AUTH_CODES:
            return NeedsAuth(text, http_status=status)
        if code == "rate_limit_exceeded" or status == 429:
            retry_after = retry_after_seconds(response.headers)
            return RateLimited(
                text,
                http_status=status,
                retry_after=RATE_LIMIT_WAIT if retry_after is None else retry_after,
            )
        if code in _DAILY_CAP_CODES:
            retry_after = retry_after_seconds(response.headers)
            return RateLimited(
                text,
                http_status=status,
                retry_after=DAILY_CAP_WAIT if retry_after is None else retry_after,
            )
        if code == "internal_error" or status >= 500 or status in (408, 425):
            return TransientError(
                text, http_status=status, retry_after=retry_after_seconds(response.headers)
            )
        if status == 401:
            return NeedsAuth(text, http_status=status)
        return PermanentError(text, http_status=status)


def _envelope(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _code(envelope: Mapping[str, Any] | None) -> str | None:
    error = envelope.get("error") if envelope else None
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        return str(error["code"])
    return None
