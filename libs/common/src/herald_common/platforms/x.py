"""The `x` platform: posts on X through the X API v2, with an OAuth 2.0 user-context token.

Account
    handle: the @username (only used to build post URLs; "i/web" links are used otherwise).
    external_id: the numeric user id, when known (saves a GET /2/users/me).
    settings (non-secret, XSettings): `reply_settings` (following | mentionedUsers |
    subscribers | verified; default: everyone may reply), `max_weighted_length` (default 280;
    raise it only for accounts X lets post longer), `user_id` (the numeric id, optional).
    credentials (secret, XCredentials): `access_token` (OAuth 2.0 Authorization Code with PKCE,
    scopes tweet.read tweet.write users.read media.write, plus offline.access for a
    `refresh_token`); `refresh_token` and `expires_at` (epoch seconds) are kept for the
    token-refresh work and not read here.

Media items: {"url": ...} or {"data": <base64>}, with optional "kind" (image | video),
"mime_type", "alt" (or "description"), "filename" and "size". A GIF is its own kind.

What the documentation says, and how it is used
-----------------------------------------------
* POST /2/tweets (https://docs.x.com/x-api/posts/create-post): JSON {"text", "media":
  {"media_ids": [...]}, "reply_settings"}; 201 {"data": {"id", "text",
  "edit_history_tweet_ids"}}. Errors are RFC 7807 problems {"title", "detail", "type",
  "status"}, or {"errors": [{"message", "parameters"}], "title", "detail", "type"} for invalid
  requests; messages keep `detail` and each `errors[].message`.
* Media (X moved off v1.1 upload.twitter.com in 2025; https://docs.x.com/x-api/media):
  images through the simple upload POST /2/media/upload (multipart `media`, `media_category`
  = tweet_image, `media_type`; https://docs.x.com/x-api/media/upload-media); GIFs and videos
  through the chunked flow POST /2/media/upload/initialize (JSON media_type, total_bytes,
  media_category tweet_gif | tweet_video), POST /2/media/upload/{id}/append (multipart `media`
  + `segment_index` 0..999), POST /2/media/upload/{id}/finalize, then, while
  `processing_info.state` is pending | in_progress, GET /2/media/upload?command=STATUS&
  media_id=... after `check_after_secs` (https://docs.x.com/x-api/media/quickstart/
  media-upload-chunked). `failed` → PermanentError with X's reason; still processing after
  `poll_timeout` → TransientError. Alt text (at most 1,000 characters, images and GIFs) goes
  through POST /2/media/metadata {"id", "metadata": {"alt_text": {"text"}}}
  (https://docs.x.com/x-api/media/create-media-metadata). Sizes: image 5 MB, GIF 15 MB,
  video 512 MB (https://docs.x.com/x-api/media). A post takes up to 4 images, or 1 GIF, or
  1 video.
* Length: twitter-text v3 (https://docs.x.com/fundamentals/counting-characters,
  github.com/twitter/twitter-text config v3.json): text NFC-normalised, every URL (with or
  without http(s)://) weighs 23, code points in U+0000-10FF, U+2000-200D, U+2010-201F and
  U+2032-2037 weigh 1, every other code point 2, and each emoji sequence 2 in all; at most
  280. `weighted_length` counts so, with the approximations listed below.
* Rate limits (https://docs.x.com/x-api/fundamentals/rate-limits): x-rate-limit-limit,
  -remaining and -reset (epoch seconds) for the 15-minute window; 429 when exceeded. A
  per-user daily cap shows as x-user-limit-24hour-limit/-remaining/-reset (and
  x-app-limit-24hour-* for the app). A 429 becomes a TransientError whose `retry_after` is
  Retry-After, else the reset of every exhausted bucket (the 24-hour one when its remaining
  is 0, so the publisher does not retry into a day-long wall every 15 minutes).
* Pacing: POST /2/tweets allows 100 per 15 minutes per user and 10,000 per 24 hours per app
  (rate-limits page above); the manage-posts introduction adds 300 posts per 3 hours per user
  (https://docs.x.com/x-api/x-api-v2/tweets/manage-tweets).
* 401 → NeedsAuth; 403 "Unsupported Authentication" (an app-only or wrong kind of token) →
  NeedsAuth; other 4xx → PermanentError; 5xx/408/425 → TransientError.
* Metrics: GET /2/tweets/:id?tweet.fields=public_metrics (tweet.read, users.read;
  https://docs.x.com/x-api/posts/get-post-by-id, fields at https://docs.x.com/x-api/
  fundamentals/data-dictionary) → `public_metrics` {like_count → likes, retweet_count →
  reposts, reply_count → replies, quote_count → quotes, impression_count → impressions,
  bookmark_count → extra["bookmarks"]}. X shows impression_count as a post's "views"; it is kept
  under impressions, the name the API gives it. `non_public_metrics` and `organic_metrics` are
  left out: they need OAuth 1.0a user context and only cover the last 30 days. A deleted or
  protected post answers HTTP 200 with no `data` and an `errors` entry (type …/problems/
  resource-not-found or not-authorized-for-resource): a PermanentError.

Duplicates, retries and lookup (reconciliation)
------------------------------------------------
X has no idempotency key: a POST /2/tweets whose answer was lost (timeout, 5xx after the
write) may have posted. X refuses the same text again with 403 {"detail": "You are not
allowed to create a Tweet with duplicate content."}. That refusal may just as well be caused
by an older post with the same text (a recurring "Good morning!"), so `publish` takes it as an
earlier success only when an earlier try of this target sent the create (the checkpoint's
stage was "creating" on entry). Then it reads the account's newest posts (GET /2/users/me,
then GET /2/users/:id/tweets with entities and created_at) and compares text (t.co links
expanded from the URL entities, the trailing media link dropped, HTML entities decoded, every
URL masked because X rewrites them, whitespace collapsed) and the number of attachments,
keeping only posts created no earlier than that first create was sent (`started_at`, less
CLOCK_SLACK_SECONDS: X's created_at has whole seconds). A match → success with that post (the
newest one if several match: X only refuses text that blocks a new post, so the newest copy
is the one in the way); none → PermanentError naming the duplicate. Without such an earlier
try the refusal is a PermanentError at once: the post in the way is not this target's.

`save_checkpoint` is called with {"stage": "uploading", "media_ids", "media_expires_at"} once
media is uploaded and {"stage": "creating", ..., "started_at"} just before POST /2/tweets
(`started_at`, epoch seconds, is kept from the first try that sent it). A retry reuses the
uploaded media ids while X still keeps them (`expires_after_secs`, with a 10-minute margin)
instead of uploading again (a re-upload after a "creating" try keeps that stage and its
`started_at`), and a `save_checkpoint` that raises stops the try before it posts. A 2xx
answer to POST /2/tweets without a post id → OutcomeUnknown (the post may be live); an
unreadable answer to a call that makes nothing visible (media, users/me) → TransientError.

`lookup` only reads. With no checkpoint, or a stage other than "creating", POST /2/tweets was
never sent: None, without asking X. After "creating", X offers no way to find a post by a key
of ours, and reading recent posts by text cannot tell our post from an identical one made by
hand or from an older copy, which is not reliable enough to settle a crashed publish
automatically: LookupUnsupported, so that the target becomes `unknown` for a person to
resolve. `may_be_public` is True only for the "creating" stage.

What the documentation leaves unclear
-------------------------------------
* Whether the 403 duplicate check covers every earlier post or only recent ones, and for how
  long: the adapter looks at the newest `lookup_limit` posts (default 20) only.
* Whether v2 answers too-long text with 400 or 403: both end as PermanentError with X's
  words.
* The twitter-text count is approximated: URLs without a scheme are recognised for common
  generic TLDs (and for country TLDs only with a path or a subdomain, as twitter-text does),
  not the full TLD list; emoji sequences are found with the grapheme approximation of
  herald_common.platforms.http, and a lone text-style ©/® counts 1.
* Whether X still answers the legacy `command=APPEND|FINALIZE` forms of /2/media/upload: the
  dedicated initialize/append/finalize paths from the current reference are used.
* The per-user 24-hour cap's size is not documented; only its headers are.
"""

from __future__ import annotations

import html
import math
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from herald_common.errors import (
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
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
    TokenCredentials,
    Violation,
)
from herald_common.platforms.http import (
    RETRYABLE_STATUSES,
    as_count,
    filename_for,
    graphemes,
    media_bytes,
    media_mime,
    retry_after_seconds,
    transport_error,
)

DEFAULT_API_URL = "https://api.x.com"
MAX_WEIGHTED_LENGTH = 280
URL_WEIGHT = 23
MAX_IMAGES = 4
MAX_ALT_TEXT = 1000
IMAGE_MAX_BYTES = 5 * 1024 * 1024
GIF_MAX_BYTES = 15 * 1024 * 1024
VIDEO_MAX_BYTES = 512 * 1024 * 1024
IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/pjpeg", "image/png", "image/webp", "image/bmp", "image/tiff"}
)
GIF_TYPE = "image/gif"
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm", "video/mp2t"})
MEDIA_EXPIRY_MARGIN = 600.0
DUPLICATE_TEXT = "duplicate content"
#: How much older than the first create a post X dates may be and still be that create's: X's
#: created_at has whole seconds, and its clock and Herald's may differ a little.
CLOCK_SLACK_SECONDS = 5.0
CREATING = "creating"

MediaKind = Literal["image", "gif", "video"]

# twitter-text v3: code points in these ranges weigh 1 (scale 100 → weight 100), others 2.
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))

# URLs as twitter-text finds them, simplified. With a scheme: anything up to whitespace.
_SCHEME_URL = re.compile(r"(?<![A-Za-z0-9@＠$#＃_])https?://[^\s]+", re.IGNORECASE)
# Without a scheme: labels, a TLD, an optional port and path; not after - _ . / @ $ # or a
# letter (invalidUrlWithoutProtocolPrecedingChars and validUrlPrecedingChars).
_BARE_URL = re.compile(
    r"(?<![A-Za-z0-9@＠$#＃_./\-])"
    r"(?P<labels>(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+)(?P<tld>[a-z]{2,24})(?![a-z0-9-])"
    r"(?::[0-9]{1,5})?(?P<path>/[^\s]*)?",
    re.IGNORECASE,
)
# Generic TLDs that make a URL without a scheme (twitter-text has the full list; these are
# the common ones).
_GENERIC_TLD_NAMES = (
    "com org net edu gov mil int info biz name pro aero coop museum mobi asia tel travel jobs "
    "cat app dev page xyz online site tech store shop blog news cloud "
    "live life world today club space website link click media network digital email "
    "solutions services agency studio design social photo photos video art events finance "
    "money bank law health care eco green earth global group team company ltd inc llc wiki "
    "academy school education university institute systems software tools zone center "
    "city london nyc paris berlin tokyo"
)
_GENERIC_TLDS = frozenset(_GENERIC_TLD_NAMES.split())
_SPECIAL_CCTLDS = frozenset({"co", "tv"})  # validSpecialCCTLD
_TRAILING = ".,:;!?'\""
_SPACE = re.compile(r"\s+")
_URL_MASK = "\ue000"
_USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")
_NUMERIC_ID = re.compile(r"[0-9]{1,19}")


class XSettings(BaseModel):
    """The non-secret options of an X account."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reply_settings: Literal["following", "mentionedUsers", "subscribers", "verified"] | None = None
    max_weighted_length: int = Field(default=MAX_WEIGHTED_LENGTH, ge=1, le=25_000)
    user_id: str | None = Field(default=None, pattern=r"^[0-9]{1,19}$")


class XCredentials(TokenCredentials):
    """The secrets of an X account (an OAuth 2.0 user-context token)."""


# -- text length ------------------------------------------------------------------------------


def _trim_url(url: str) -> str:
    url = url.rstrip(_TRAILING)
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1].rstrip(_TRAILING)
    return url


def url_spans(text: str) -> list[tuple[int, int]]:
    """Where the text has URLs that X shortens to t.co links (start, end), in order."""
    spans: list[tuple[int, int]] = []
    for match in _SCHEME_URL.finditer(text):
        url = _trim_url(match.group(0))
        spans.append((match.start(), match.start() + len(url)))
    for match in _BARE_URL.finditer(text):
        start = match.start()
        if any(s <= start < e for s, e in spans):
            continue
        tld = match.group("tld").lower()
        path = match.group("path")
        domain = match.group("labels") + match.group("tld")
        if tld not in _GENERIC_TLDS:
            if len(tld) != 2:
                continue
            # A country TLD right after a single label ("example.de") is a URL only with a
            # path (twitter-text's invalidShortDomain), except .co and .tv.
            if not path and domain.count(".") < 2 and tld not in _SPECIAL_CCTLDS:
                continue
        end = start + len(_trim_url(match.group(0))) if path else match.end("tld")
        spans.append((start, end))
    return sorted(spans)


def _is_emoji_cluster(cluster: str) -> bool:
    for char in cluster:
        code = ord(char)
        if (
            0x1F000 <= code <= 0x1FAFF
            or 0x2600 <= code <= 0x27BF
            or 0x2300 <= code <= 0x23FF
            or 0x2B00 <= code <= 0x2BFF
            or code in (0xFE0F, 0x20E3)
        ):
            return True
    return False


def _char_weight(char: str) -> int:
    code = ord(char)
    return 1 if any(low <= code <= high for low, high in _LIGHT_RANGES) else 2


def _weigh(segment: str) -> int:
    total = 0
    for cluster in graphemes(segment):
        if _is_emoji_cluster(cluster):
            total += 2
        else:
            total += sum(_char_weight(char) for char in cluster)
    return total


def weighted_length(text: str) -> int:
    """The length X checks against its 280 limit, counted as twitter-text v3 counts it."""
    text = unicodedata.normalize("NFC", text)
    total, position = 0, 0
    for start, end in url_spans(text):
        total += _weigh(text[position:start]) + URL_WEIGHT
        position = end
    return total + _weigh(text[position:])


# -- media ------------------------------------------------------------------------------------


def _sniff(content: bytes) -> str | None:
    """The MIME type the first bytes announce, for media given without one."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return GIF_TYPE
    if content.startswith(b"RIFF") and content[8:12] == b"WEBP":
        return "image/webp"
    if content.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if content.startswith(b"BM"):
        return "image/bmp"
    if content[4:8] == b"ftyp":
        return "video/quicktime" if content[8:12] == b"qt  " else "video/mp4"
    if content.startswith(b"\x1aE\xdf\xa3"):
        return "video/webm"
    return None


def media_kind(item: Mapping[str, Any]) -> MediaKind | None:
    """image, gif or video: from `mime_type`, else `kind`, else the file extension."""
    mime = media_mime(item)
    if mime == GIF_TYPE:
        return "gif"
    kind = item.get("kind")
    if kind == "video" or (kind is None and mime and mime.startswith("video/")):
        return "video"
    if kind == "image" or (kind is None and mime and mime.startswith("image/")):
        return "image"
    return None


def _known_size(item: Mapping[str, Any]) -> int | None:
    size = item.get("size")
    if isinstance(size, int):
        return size
    data = item.get("data")
    if isinstance(data, bytes):
        return len(data)
    if isinstance(data, str):
        return len(data) * 3 // 4 - data.count("=", -2)
    return None


_LIMITS: dict[str, tuple[int, str]] = {
    "image": (IMAGE_MAX_BYTES, "5 MB"),
    "gif": (GIF_MAX_BYTES, "15 MB"),
    "video": (VIDEO_MAX_BYTES, "512 MB"),
}


# -- comparing posts --------------------------------------------------------------------------


def _comparable(text: str) -> str:
    """Text reduced for comparison: NFC, URLs masked (X rewrites them), whitespace collapsed."""
    text = unicodedata.normalize("NFC", text)
    parts, position = [], 0
    for start, end in url_spans(text):
        parts.append(text[position:start])
        parts.append(_URL_MASK)
        position = end
    parts.append(text[position:])
    return _SPACE.sub(" ", "".join(parts)).strip()


def _post_text(post: Mapping[str, Any]) -> str:
    """A post's text as its author typed it, as far as X's answer allows."""
    note = post.get("note_tweet") if isinstance(post.get("note_tweet"), Mapping) else None
    text = str((note or {}).get("text") or post.get("text") or "")
    entities = (note or {}).get("entities") or post.get("entities") or {}
    for entity in entities.get("urls") or ():
        short = entity.get("url")
        if not short:
            continue
        replacement = "" if entity.get("media_key") else str(entity.get("expanded_url") or short)
        text = text.replace(short, replacement)
    return html.unescape(text)


def _attachment_count(post: Mapping[str, Any]) -> int:
    attachments = post.get("attachments") or {}
    return len(attachments.get("media_keys") or ())


def _created_at(post: Mapping[str, Any]) -> float | None:
    """Epoch seconds of a post's `created_at` ("2026-05-01T10:00:00.000Z"), None if unreadable."""
    value = post.get("created_at")
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _epoch(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# -- errors -----------------------------------------------------------------------------------


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def problem_text(response: httpx.Response) -> str:
    """X's own words for a failed response: `detail` (else `title`) and each error's message."""
    body = _json(response)
    parts: list[str] = []
    if isinstance(body, Mapping):
        for key in ("detail", "title"):
            value = body.get(key)
            if isinstance(value, str) and value:
                parts.append(value)
                break
        for error in body.get("errors") or ():
            if isinstance(error, Mapping):
                message = error.get("message") or error.get("detail")
                if isinstance(message, str) and message and message not in parts:
                    parts.append(message)
    if parts:
        return "; ".join(parts)
    text = response.text.strip()
    return text[:300] if text else (response.reason_phrase or f"HTTP {response.status_code}")


def _data(response: httpx.Response) -> Mapping[str, Any] | None:
    """The `data` object of a successful answer, None when the answer has none."""
    body = _json(response)
    data = body.get("data") if isinstance(body, Mapping) else None
    return data if isinstance(data, Mapping) else None


def _data_id(response: httpx.Response) -> str | None:
    """`data.id` of a successful answer, None when the answer has none."""
    data = _data(response)
    value = data.get("id") if data is not None else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _is_duplicate(response: httpx.Response) -> bool:
    return response.status_code == 403 and DUPLICATE_TEXT in problem_text(response).lower()


def _is_auth_problem(response: httpx.Response) -> bool:
    body = _json(response)
    if not isinstance(body, Mapping):
        return False
    kind = str(body.get("type") or "")
    title = str(body.get("title") or "")
    return kind.endswith("/unsupported-authentication") or title == "Unsupported Authentication"


class XPlatform(Platform):
    """Publishes posts to X for the account whose OAuth 2.0 user token it is given."""

    name = "x"
    pacing = (
        Pace("account", 100, 15 * 60),
        Pace("account", 300, 3 * 60 * 60),
        Pace("platform", 10_000, 24 * 60 * 60),
    )

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_url: str = DEFAULT_API_URL,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 5.0,
        poll_timeout: float = 600.0,
        chunk_size: int = 4 * 1024 * 1024,
        lookup_limit: int = 20,
    ) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout
        self._chunk_size = chunk_size
        self._lookup_limit = min(max(lookup_limit, 5), 100)
        self._user_ids: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        violations: list[Violation] = []
        try:
            settings = XSettings.model_validate(dict(account.settings))
        except ValidationError as exc:
            violations.append(Violation("settings", _settings_reason(exc)))
            settings = XSettings()
        limit = settings.max_weighted_length
        length = weighted_length(text)
        if length > limit:
            violations.append(
                Violation(
                    "max_weighted_length",
                    f"counts {length} as X counts it (links 23, CJK characters and emoji 2); "
                    f"this account takes at most {limit}",
                )
            )
        if not text.strip() and not media:
            violations.append(Violation("empty", "a post needs text or media"))
        violations.extend(self._validate_media(media))
        return violations

    def _validate_media(self, media: list[Mapping[str, Any]]) -> list[Violation]:
        violations: list[Violation] = []
        kinds: list[MediaKind] = []
        for number, item in enumerate(media, start=1):
            if not (item.get("url") or item.get("data")):
                violations.append(Violation("media", f"media {number} has no url or data"))
            kind = media_kind(item)
            mime = media_mime(item)
            if kind is None:
                violations.append(
                    Violation(
                        "media_type",
                        f"media {number} is neither an image, a GIF nor a video "
                        f"({mime or 'unknown type'})",
                    )
                )
                continue
            kinds.append(kind)
            allowed = IMAGE_TYPES if kind == "image" else VIDEO_TYPES if kind == "video" else None
            if allowed is not None and mime and mime not in allowed:
                violations.append(
                    Violation("media_type", f"media {number} is {mime}; X does not take it")
                )
            size = _known_size(item)
            limit, words = _LIMITS[kind]
            if size is not None and size > limit:
                violations.append(
                    Violation(
                        "media_size",
                        f"media {number} is {size:,} bytes; X takes a {kind} of at most {words}",
                    )
                )
            alt = item.get("alt") or item.get("description")
            if isinstance(alt, str) and len(alt) > MAX_ALT_TEXT:
                violations.append(
                    Violation(
                        "alt_text",
                        f"media {number} has {len(alt)} characters of alt text; X takes at "
                        f"most {MAX_ALT_TEXT}",
                    )
                )
        images = kinds.count("image")
        moving = len(kinds) - images
        if moving and images:
            violations.append(
                Violation("media_mix", "X takes either images, or one GIF, or one video")
            )
        elif moving > 1:
            violations.append(Violation("max_media", f"has {moving} GIFs/videos; X takes one"))
        elif images > MAX_IMAGES:
            violations.append(
                Violation("max_media", f"has {images} images; X takes at most {MAX_IMAGES}")
            )
        return violations

    # -- publish ----------------------------------------------------------------------------

    def may_be_public(self, checkpoint: Mapping[str, Any]) -> bool:
        """Only a try that reached POST /2/tweets ("creating") may have posted."""
        return checkpoint.get("stage") == CREATING

    def publish(self, request: PublishRequest) -> PublishResult:
        account = request.account
        settings = self._settings(account)
        headers = self._auth(account)
        checkpoint = dict(request.checkpoint)
        # An earlier try of this target sent POST /2/tweets (and so may have posted) only when
        # it left the "creating" stage; its `started_at` is when the first such create went out.
        sent_before = checkpoint.get("stage") == CREATING
        first_started = _epoch(checkpoint.get("started_at")) if sent_before else None
        progress: dict[str, Any] = (
            {"stage": CREATING, "started_at": first_started}
            if sent_before
            else {"stage": "uploading"}
        )
        media_ids, expires_at = self._media(request, headers, checkpoint, progress)
        body: dict[str, Any] = {}
        if request.text:
            body["text"] = request.text
        if media_ids:
            body["media"] = {"media_ids": media_ids}
        if settings.reply_settings:
            body["reply_settings"] = settings.reply_settings
        # Before the step that makes the post visible: a try that may no longer change this
        # target stops here (save_checkpoint raises), and lookup knows a create may be out.
        started_at = first_started if sent_before else self._clock()
        request.save_checkpoint(
            {
                "stage": CREATING,
                "media_ids": media_ids,
                "media_expires_at": expires_at,
                "started_at": started_at,
            }
        )
        response = self._send("POST", "/2/tweets", headers=headers, json=body)
        if response.status_code in (200, 201):
            post_id = _data_id(response)
            if post_id is None:
                raise OutcomeUnknown(
                    f"x: X accepted the post (HTTP {response.status_code}) but its answer names "
                    "no post id; the post may be live, so it is not sent again: check the account",
                    http_status=response.status_code,
                )
            return PublishResult(
                platform_post_id=post_id,
                url=self._post_url(account, post_id),
                http_status=response.status_code,
            )
        if _is_duplicate(response):
            if not sent_before:
                raise PermanentError(
                    f"x: {problem_text(response)} (HTTP 403): an earlier post with this text is "
                    "in the way, and no earlier try of this target sent it, so it is not this "
                    "one; change the text or delete the older post",
                    http_status=response.status_code,
                )
            return self._earlier_post(request, settings, headers, response, started_at)
        raise self._error(response)

    def _earlier_post(
        self,
        request: PublishRequest,
        settings: XSettings,
        headers: dict[str, str],
        refusal: httpx.Response,
        started_at: float | None,
    ) -> PublishResult:
        """The post an earlier try of this target made, which X says this one duplicates.

        Only a post made since that try first sent the create can be it: an older one with the
        same text is someone else's (a recurring text), and then this post is refused for good.
        """
        matches = self._recent_matches(request, settings, headers)
        ours = [
            post
            for post in matches
            if started_at is not None
            and (created := _created_at(post)) is not None
            and created >= started_at - CLOCK_SLACK_SECONDS
        ]
        if not ours:
            if matches and started_at is None:
                older = self._post_url(request.account, str(matches[0]["id"]))
                found = (
                    f"the post with this text and media, {older}, cannot be told from an older "
                    "one (the first try kept no start time)"
                )
            elif matches:
                older = self._post_url(request.account, str(matches[0]["id"]))
                found = (
                    f"the post with this text and media, {older}, is older than this target's "
                    "first try, so it is not this one"
                )
            else:
                found = (
                    f"none of the account's {self._lookup_limit} newest posts has this text and "
                    "media"
                )
            raise PermanentError(
                f"x: {problem_text(refusal)} (HTTP 403), but {found}; a person should check "
                "the account",
                http_status=refusal.status_code,
            )
        post_id = str(ours[0]["id"])  # newest first
        return PublishResult(
            platform_post_id=post_id,
            url=self._post_url(request.account, post_id),
            http_status=refusal.status_code,
        )

    def _recent_matches(
        self, request: PublishRequest, settings: XSettings, headers: dict[str, str]
    ) -> list[Mapping[str, Any]]:
        user_id = self._user_id(request.account, settings, headers)
        response = self._send(
            "GET",
            f"/2/users/{user_id}/tweets",
            headers=headers,
            params={
                "max_results": self._lookup_limit,
                "exclude": "retweets,replies",
                "tweet.fields": "created_at,entities,attachments,note_tweet",
            },
        )
        if response.status_code != 200:
            raise self._error(response)
        wanted = _comparable(request.text)
        body = _json(response)
        posts = body.get("data") if isinstance(body, Mapping) else None
        return [
            post
            for post in (posts if isinstance(posts, list) else ())
            if isinstance(post, Mapping)
            and post.get("id")
            and _comparable(_post_text(post)) == wanted
            and _attachment_count(post) == len(request.media)
        ]

    def _user_id(self, account: AccountRef, settings: XSettings, headers: dict[str, str]) -> str:
        if settings.user_id:
            return settings.user_id
        if account.external_id and _NUMERIC_ID.fullmatch(account.external_id):
            return account.external_id
        with self._lock:
            cached = self._user_ids.get(account.id)
        if cached:
            return cached
        response = self._send("GET", "/2/users/me", headers=headers)
        if response.status_code != 200:
            raise self._error(response)
        user_id = _data_id(response)
        if user_id is None:
            raise TransientError(
                "x: GET /2/users/me answered without the user's id; trying again later",
                http_status=response.status_code,
            )
        with self._lock:
            self._user_ids[account.id] = user_id
        return user_id

    # -- media ------------------------------------------------------------------------------

    def _media(
        self,
        request: PublishRequest,
        headers: dict[str, str],
        checkpoint: Mapping[str, Any],
        progress: Mapping[str, Any],
    ) -> tuple[list[str], float | None]:
        """The media ids to post with: the saved ones while X keeps them, else new uploads.

        New uploads are saved with `progress` (the stage and first-create time to keep: a
        re-upload after an earlier create must not make the checkpoint say none was sent).
        """
        if not request.media:
            return [], None
        saved = checkpoint.get("media_ids")
        expires = checkpoint.get("media_expires_at")
        if (
            isinstance(saved, list)
            and len(saved) == len(request.media)
            and all(isinstance(media_id, str) for media_id in saved)
            and isinstance(expires, int | float)
            and expires - MEDIA_EXPIRY_MARGIN > self._clock()
        ):
            return list(saved), float(expires)
        media_ids: list[str] = []
        expires_at = math.inf
        for index, item in enumerate(request.media):
            media_id, expires_in = self._upload(headers, item, index)
            media_ids.append(media_id)
            if expires_in is not None:
                expires_at = min(expires_at, self._clock() + expires_in)
        saved_expiry = expires_at if math.isfinite(expires_at) else None
        request.save_checkpoint(
            {**progress, "media_ids": media_ids, "media_expires_at": saved_expiry}
        )
        return media_ids, saved_expiry

    def _upload(
        self, headers: dict[str, str], item: Mapping[str, Any], index: int
    ) -> tuple[str, float | None]:
        content, fetched_mime = media_bytes(self._client, self.name, item)
        mime = media_mime({**item, "mime_type": fetched_mime}) if fetched_mime else media_mime(item)
        if mime is None or mime == "application/octet-stream":
            mime = _sniff(content)
        kind = media_kind({**item, "mime_type": mime})
        number = index + 1
        if kind is None or mime is None:
            raise PermanentError(f"x: media {number} is neither an image, a GIF nor a video")
        limit, words = _LIMITS[kind]
        if len(content) > limit:
            raise PermanentError(
                f"x: media {number} is {len(content):,} bytes; X takes a {kind} of at most {words}"
            )
        if kind == "image":
            if mime not in IMAGE_TYPES:
                raise PermanentError(f"x: media {number} is {mime}; X does not take it")
            data = self._simple_upload(headers, content, mime, filename_for(item, index))
        else:
            data = self._chunked_upload(headers, content, mime, kind)
        media_id = str(data["id"])  # the upload calls checked it is there
        data = self._await_processing(headers, media_id, data)
        alt = item.get("alt") or item.get("description")
        if isinstance(alt, str) and alt and kind in ("image", "gif"):
            self._set_alt_text(headers, media_id, alt)
        expires_in = data.get("expires_after_secs")
        return media_id, float(expires_in) if isinstance(expires_in, int | float) else None

    def _simple_upload(
        self, headers: dict[str, str], content: bytes, mime: str, filename: str
    ) -> Mapping[str, Any]:
        response = self._send(
            "POST",
            "/2/media/upload",
            headers=headers,
            files={"media": (filename, content, mime)},
            data={"media_category": "tweet_image", "media_type": mime},
        )
        if response.status_code not in (200, 201):
            raise self._error(response)
        return self._media_data(response, "the image upload")

    def _media_data(self, response: httpx.Response, what: str) -> Mapping[str, Any]:
        """The media object of an upload answer; a TransientError when it has no id.

        An upload makes nothing visible: the next try uploads again.
        """
        data = _data(response)
        if data is None or _data_id(response) is None:
            raise TransientError(
                f"x: X answered {what} (HTTP {response.status_code}) without a media id; "
                "trying again later",
                http_status=response.status_code,
            )
        return data

    def _chunked_upload(
        self, headers: dict[str, str], content: bytes, mime: str, kind: MediaKind
    ) -> Mapping[str, Any]:
        response = self._send(
            "POST",
            "/2/media/upload/initialize",
            headers=headers,
            json={
                "media_type": mime,
                "total_bytes": len(content),
                "media_category": "tweet_gif" if kind == "gif" else "tweet_video",
            },
        )
        if response.status_code not in (200, 201):
            raise self._error(response)
        media_id = str(self._media_data(response, "the upload's initialize")["id"])
        for segment, start in enumerate(range(0, len(content), self._chunk_size)):
            response = self._send(
                "POST",
                f"/2/media/upload/{media_id}/append",
                headers=headers,
                files={
                    "media": (
                        "segment",
                        content[start : start + self._chunk_size],
                        "application/octet-stream",
                    )
                },
                data={"segment_index": str(segment)},
            )
            if response.status_code not in (200, 201, 204):
                raise self._error(response)
        response = self._send("POST", f"/2/media/upload/{media_id}/finalize", headers=headers)
        if response.status_code not in (200, 201):
            raise self._error(response)
        return self._media_data(response, "the upload's finalize")

    def _await_processing(
        self, headers: dict[str, str], media_id: str, data: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        deadline = self._monotonic() + self._poll_timeout
        while True:
            info = data.get("processing_info") or {}
            state = info.get("state")
            if not info or state == "succeeded":
                return data
            if state == "failed":
                error = info.get("error") or {}
                reason = error.get("message") or error.get("name") or "X gave no reason"
                raise PermanentError(f"x: media {media_id} failed processing: {reason}")
            if self._monotonic() >= deadline:
                raise TransientError(
                    f"x: media {media_id} was still processing after {self._poll_timeout:g} s"
                )
            wait = info.get("check_after_secs")
            self._sleep(float(wait) if isinstance(wait, int | float) else self._poll_interval)
            response = self._send(
                "GET",
                "/2/media/upload",
                headers=headers,
                params={"command": "STATUS", "media_id": media_id},
            )
            if response.status_code != 200:
                raise self._error(response)
            status = _data(response)
            if status is None:
                raise TransientError(
                    f"x: X answered the status of media {media_id} without it; trying again later",
                    http_status=response.status_code,
                )
            data = status

    def _set_alt_text(self, headers: dict[str, str], media_id: str, alt: str) -> None:
        response = self._send(
            "POST",
            "/2/media/metadata",
            headers=headers,
            json={"id": media_id, "metadata": {"alt_text": {"text": alt}}},
        )
        if response.status_code not in (200, 201):
            raise self._error(response)

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        if request.checkpoint.get("stage") != CREATING:
            return None  # the stage is saved before POST /2/tweets: it was never sent
        raise LookupUnsupported(
            "x: X cannot find a post by a key of ours, and reading recent posts by text cannot "
            "tell this publish from an identical post; a person should check the account"
        )

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        post_id = request.platform_post_id
        if not _NUMERIC_ID.fullmatch(post_id):
            raise PermanentError(f"x: {post_id!r} is not a post id")
        response = self._send(
            "GET",
            f"/2/tweets/{post_id}",
            headers=self._auth(request.account),
            params={"tweet.fields": "public_metrics"},
        )
        if response.status_code == 404:
            raise PermanentError(f"x: post {post_id} is gone (HTTP 404)", http_status=404)
        if response.status_code != 200:
            raise self._error(response)
        data = _data(response)
        if data is None:
            # X answers 200 with only `errors` for a deleted or protected post.
            raise PermanentError(
                f"x: post {post_id} cannot be read: {problem_text(response)}", http_status=200
            )
        counts = data.get("public_metrics")
        if not isinstance(counts, Mapping):
            raise TransientError(f"x: post {post_id} came without public_metrics", http_status=200)
        bookmarks = as_count(counts.get("bookmark_count"))
        return PostMetrics(
            likes=as_count(counts.get("like_count")),
            reposts=as_count(counts.get("retweet_count")),
            replies=as_count(counts.get("reply_count")),
            quotes=as_count(counts.get("quote_count")),
            impressions=as_count(counts.get("impression_count")),
            extra={"bookmarks": bookmarks} if bookmarks is not None else {},
        )

    # -- HTTP -------------------------------------------------------------------------------

    @staticmethod
    def _settings(account: AccountRef) -> XSettings:
        try:
            return XSettings.model_validate(dict(account.settings))
        except ValidationError as exc:
            raise PermanentError(f"x: the account settings are invalid: {exc}") from None

    @staticmethod
    def _auth(account: AccountRef) -> dict[str, str]:
        token = account.credentials.get("access_token")
        if not token:
            raise NeedsAuth("x: the account has no access token; connect it again")
        return {"Authorization": f"Bearer {token}"}

    @staticmethod
    def _post_url(account: AccountRef, post_id: str) -> str:
        handle = account.handle.lstrip("@")
        owner = handle if _USERNAME.fullmatch(handle) else "i/web"
        return f"https://x.com/{owner}/status/{post_id}"

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, f"{self._api_url}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc

    def _error(self, response: httpx.Response) -> PlatformError:
        status = response.status_code
        message = f"x: {problem_text(response)} (HTTP {status})"
        if status == 429:
            return RateLimited(
                message, http_status=status, retry_after=self._rate_limit_wait(response.headers)
            )
        if status >= 500 or status in RETRYABLE_STATUSES:
            retry_after = retry_after_seconds(response.headers, now=self._clock)
            return TransientError(message, http_status=status, retry_after=retry_after)
        if status == 401 or (status == 403 and _is_auth_problem(response)):
            return NeedsAuth(message, http_status=status)
        return PermanentError(message, http_status=status)

    def _rate_limit_wait(self, headers: httpx.Headers) -> float | None:
        """Seconds until the exhausted bucket refills: Retry-After, else the latest reset."""
        if "retry-after" in headers:
            wait = retry_after_seconds(headers, now=self._clock)
            if wait is not None:
                return wait
        waits: list[float] = []
        for prefix in ("x-user-limit-24hour", "x-app-limit-24hour", "x-rate-limit"):
            if headers.get(f"{prefix}-remaining", "").strip() == "0":
                wait = retry_after_seconds(
                    headers, reset_headers=(f"{prefix}-reset",), now=self._clock
                )
                if wait is not None:
                    waits.append(wait)
        if not waits:
            wait = retry_after_seconds(
                headers, reset_headers=("x-rate-limit-reset",), now=self._clock
            )
            if wait is not None:
                waits.append(wait)
        return max(waits) if waits else None


def _settings_reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors()
    )
