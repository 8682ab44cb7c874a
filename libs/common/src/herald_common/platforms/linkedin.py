"""The `linkedin` platform: posts through LinkedIn's versioned Posts API (/rest/posts).

Account
    settings (non-secret, LinkedInSettings): `author` (required: the member's
    "urn:li:person:…" or the page's "urn:li:organization:…"), `visibility` (PUBLIC |
    CONNECTIONS | LOGGED_IN; default PUBLIC; CONNECTIONS only for a person),
    `reshare_disabled` (isReshareDisabledByAuthor; default false).
    credentials (secret, LinkedInCredentials): `access_token` (OAuth 2.0 member token with
    w_member_social, or w_organization_social for a page; r_member_social /
    r_organization_social let `lookup` read posts); `refresh_token` and `expires_at` (epoch
    seconds) are kept for the token-refresh work and not read here.

Media items (images only): {"url": ...} or {"data": <base64>}, with optional "alt",
"mime_type", "filename" and "size".

What the documentation says, and how it is used
-----------------------------------------------
* Every call carries `Authorization: Bearer`, `LinkedIn-Version: YYYYMM` and
  `X-Restli-Protocol-Version: 2.0.0` (https://learn.microsoft.com/en-us/linkedin/marketing/
  community-management/shares/posts-api). The version is a constructor argument
  (DEFAULT_VERSION); LinkedIn supports each monthly version for about a year and answers a
  retired one with 426 NONEXISTENT_VERSION, which ends as a PermanentError.
* POST /rest/posts with {"author", "commentary", "visibility", "distribution":
  {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels":
  []}, "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor"} → 201 with the post URN
  in the `x-restli-id` header; the post is at https://www.linkedin.com/feed/update/<urn>/.
* `commentary` is "little text" (https://learn.microsoft.com/en-us/linkedin/marketing/
  community-management/shares/little-text-format): the reserved characters
  | { } @ [ ] ( ) < > # \\ * _ ~ must be escaped with a backslash to be plain text, or the post
  is cut or garbled. `escape_commentary` escapes them all except the `#` that starts a
  hashtag (`#` + letters/digits after a space or at the start), which is left as the
  HashtagElement the format defines so hashtags stay hashtags.
* Images (https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/
  images-api): POST /rest/images?action=initializeUpload {"initializeUploadRequest":
  {"owner": author}} → {"value": {"uploadUrl", "image"}}; PUT the bytes to uploadUrl (with the
  bearer token); GET /rest/images/{urn} until "status" is AVAILABLE (PROCESSING_FAILED →
  PermanentError; still processing after `poll_timeout` → TransientError). One image →
  content.media {"id", "altText"}; 2 to 20 → content.multiImage {"images": [...]}
  (https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/
  multiimage-post-api). JPG, GIF and PNG only; videos need the Videos API, which this
  adapter does not use.
* Commentary limit: 3,000 characters (Posts API schema).
* Errors: {"status", "serviceErrorCode", "code", "message"} (https://learn.microsoft.com/en-us/
  linkedin/shared/api-guide/concepts/error-handling). 401 (INVALID_ACCESS_TOKEN,
  EXPIRED_ACCESS_TOKEN 65601, REVOKED_ACCESS_TOKEN 65602) → NeedsAuth; 403 ACCESS_DENIED naming
  missing permissions → NeedsAuth (the token lacks a scope or the member lost the page role,
  both fixed by a person connecting it again); other 4xx → PermanentError with LinkedIn's
  message and code; 5xx → TransientError.
* Rate limits (https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/
  rate-limits): per application and per member, per day, "reset at midnight UTC every day";
  the numbers "are not published in documentation" and no rate-limit headers are documented.
  A 429 becomes a TransientError whose `retry_after` is Retry-After when sent, else the time
  until the next midnight UTC when the message names a DAY limit, else unknown. `pacing` is
  empty because LinkedIn documents no numbers to pace by.

Duplicates, retries and lookup (reconciliation)
------------------------------------------------
LinkedIn has no idempotency key for POST /rest/posts. It refuses the same content again with
422 (or 400) DUPLICATE_POST, "Content is a duplicate of urn:li:share:…". That refusal may be
caused by an older post with the same text (a recurring "Good morning!"), so `publish` takes
the post it names as this target's earlier success (a retry after a lost answer) only when an
earlier try of this target sent the create (the checkpoint's stage was "creating" on entry);
otherwise, or when the refusal names no URN, it is a PermanentError naming the duplicate. A
201 without the post URN is OutcomeUnknown: the post is live, but which one it is is unknown.

`save_checkpoint` gets {"stage": "uploading", "images": [...]} once the images are uploaded
and {"stage": "creating", "images": [...]} just before POST /rest/posts. A retry reuses the
uploaded image URNs instead of uploading again (a re-upload after a "creating" try keeps that
stage), and a `save_checkpoint` that raises stops the try before it posts. `may_be_public` is
True only for the "creating" stage.

`lookup` only reads: with no checkpoint or a stage other than "creating" the post was never
sent (None, without asking LinkedIn). Otherwise it lists the author's newest posts (GET /rest/posts?q=author&author=<urn>,
`X-RestLi-Method: FINDER`, sortBy LAST_MODIFIED) and compares their commentary (little text
undone, hashtag templates read back as #tag, whitespace collapsed) and image count with the
request's: exactly one match → that post; none → None (a post LinkedIn still has would also
be refused as a duplicate naming it, so a wrong None cannot post twice while LinkedIn's
duplicate check holds); several → LookupUnsupported. Reading members' posts needs the
restricted r_member_social permission: a 403 → LookupUnsupported, so the target is left for a
person.

Metrics
-------
GET /rest/socialActions/{post URN, URL-encoded} ("Retrieve a Summary of Social Actions",
https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/
network-update-social-actions) → `likesSummary.totalLikes` → likes and
`commentsSummary.aggregatedTotalComments` → replies (`totalFirstLevelComments` in `extra`).
Reading them needs r_organization_social for a page's posts (a member with the ADMINISTRATOR or
DIRECT_SPONSORED_CONTENT_POSTER role) or r_member_social for a member's, which LinkedIn grants
"to select developers only"; w_member_social, which publishing needs, allows no reads. A 403
is therefore a PermanentError naming the missing permission (a refresh cannot add it), and a
404 (the post was deleted) one too. Reposts, views and impressions stay None: they come from
organizationalEntityShareStatistics (pages, r_organization_social) and
memberCreatorPostAnalytics (r_member_postAnalytics), which this adapter does not read.

What the documentation leaves unclear
-------------------------------------
* Whether the 3,000 limit counts the text before or after escaping, and in which unit:
  `validate` counts the text as written in UTF-16 code units (Java's String length), which
  never under-counts characters.
* Whether a hashtag may contain `_`: hashtags here are letters and digits; a `_` ends the
  hashtag and is escaped.
* How long, and over which content, DUPLICATE_POST applies; a duplicate refusal without a
  URN cannot be matched to a post and is a PermanentError.
* Whether commentary read back keeps our escapes or returns hashtag templates
  ({hashtag|\\#|tag}): both are read back to plain text before comparing.
* The member/app daily limits for POST /rest/posts (see the Developer Portal's Analytics).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

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
    json_object,
    media_bytes,
    media_mime,
    retry_after_seconds,
    transport_error,
)

DEFAULT_API_URL = "https://api.linkedin.com"
DEFAULT_VERSION = "202605"
MAX_COMMENTARY = 3000
MAX_IMAGES = 20
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif"})
AUTHOR_PATTERN = r"^urn:li:(person|organization):[A-Za-z0-9_-]+$"

_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
_HASHTAG = re.compile(r"(?:(?<=\s)|^)#([^\W_]+)")
_HASHTAG_TEMPLATE = re.compile(r"\{hashtag\|\\?[#＃]\|([^}]*)\}")
_UNESCAPE = re.compile(r"\\([\\|{}@\[\]()<>#*_~])")
_DUPLICATE_URN = re.compile(r"urn:li:(?:share|ugcPost|activity):[0-9]+")
_POST_URN = re.compile(r"urn:li:(?:share|ugcPost|activity):[0-9]+")
_SPACE = re.compile(r"\s+")
CREATING = "creating"


class LinkedInSettings(BaseModel):
    """The non-secret options of a LinkedIn account (a member or a page)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    author: str = Field(pattern=AUTHOR_PATTERN)
    visibility: Literal["PUBLIC", "CONNECTIONS", "LOGGED_IN"] = "PUBLIC"
    reshare_disabled: bool = False


class LinkedInCredentials(TokenCredentials):
    """The secrets of a LinkedIn account (an OAuth 2.0 member token)."""


def _escape(text: str) -> str:
    return _RESERVED.sub(r"\\\1", text)


def escape_commentary(text: str) -> str:
    """The text as little-text commentary: reserved characters escaped, hashtags kept."""
    parts: list[str] = []
    position = 0
    for match in _HASHTAG.finditer(text):
        parts.append(_escape(text[position : match.start()]))
        parts.append("#" + match.group(1))
        position = match.end()
    parts.append(_escape(text[position:]))
    return "".join(parts)


def plain_commentary(commentary: str) -> str:
    """Little-text commentary read back as the plain text it shows."""
    text = _HASHTAG_TEMPLATE.sub(lambda m: "#" + m.group(1), commentary)
    return _UNESCAPE.sub(r"\1", text)


def _comparable(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def commentary_length(text: str) -> int:
    """The length checked against the 3,000 limit: UTF-16 code units of the written text."""
    return len(text.encode("utf-16-le")) // 2


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_parts(response: httpx.Response) -> tuple[str, str | None]:
    """LinkedIn's message and code for a failed response."""
    body = _json(response)
    if isinstance(body, Mapping):
        message = body.get("message")
        code = body.get("code")
        code = code if isinstance(code, str) and code else None
        if isinstance(message, str) and message:
            return message, code
        if code:
            return code, None
    text = response.text.strip()
    return (
        text[:300] if text else (response.reason_phrase or f"HTTP {response.status_code}")
    ), None


class LinkedInPlatform(Platform):
    """Publishes posts as the member or page named in each account's `author` setting."""

    name = "linkedin"
    pacing = ()  # LinkedIn does not publish its daily limits (see the module docstring)

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_url: str = DEFAULT_API_URL,
        version: str = DEFAULT_VERSION,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 2.0,
        poll_timeout: float = 120.0,
        lookup_limit: int = 20,
    ) -> None:
        self._client = client
        self._api_url = api_url.rstrip("/")
        self._version = version
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout
        self._lookup_limit = min(max(lookup_limit, 1), 100)

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        violations: list[Violation] = []
        settings = dict(account.settings)
        author = settings.get("author")
        if not isinstance(author, str) or not re.fullmatch(AUTHOR_PATTERN, author):
            violations.append(
                Violation(
                    "author",
                    "the account needs an `author` setting: urn:li:person:… or "
                    "urn:li:organization:…",
                )
            )
        try:
            parsed = LinkedInSettings.model_validate(settings)
        except ValidationError as exc:
            reasons = [
                f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
                for error in exc.errors()
                if error["loc"][:1] != ("author",)
            ]
            if reasons:
                violations.append(Violation("settings", "; ".join(reasons)))
        else:
            if parsed.visibility == "CONNECTIONS" and ":organization:" in parsed.author:
                violations.append(
                    Violation("visibility", "a page cannot post to CONNECTIONS; use PUBLIC")
                )
        length = commentary_length(text)
        if length > MAX_COMMENTARY:
            violations.append(
                Violation(
                    "max_characters",
                    f"has {length} characters; LinkedIn takes at most {MAX_COMMENTARY:,}",
                )
            )
        if not text.strip() and not media:
            violations.append(Violation("empty", "a post needs text or images"))
        if len(media) > MAX_IMAGES:
            violations.append(
                Violation(
                    "max_images", f"has {len(media)} images; LinkedIn takes at most {MAX_IMAGES}"
                )
            )
        for number, item in enumerate(media, start=1):
            if not (item.get("url") or item.get("data")):
                violations.append(Violation("media", f"image {number} has no url or data"))
            mime = media_mime(item)
            if item.get("kind") == "video" or (mime and mime.startswith("video/")):
                violations.append(
                    Violation("media_type", f"media {number} is a video; Herald posts images only")
                )
            elif mime and mime not in IMAGE_TYPES:
                violations.append(
                    Violation(
                        "media_type", f"image {number} is {mime}; LinkedIn takes JPG, PNG and GIF"
                    )
                )
        return violations

    # -- publish ----------------------------------------------------------------------------

    def may_be_public(self, checkpoint: Mapping[str, Any]) -> bool:
        """Only a try that reached POST /rest/posts ("creating") may have posted."""
        return checkpoint.get("stage") == CREATING

    def publish(self, request: PublishRequest) -> PublishResult:
        settings = self._settings(request.account)
        headers = self._headers(request.account)
        # Only an earlier try that left the "creating" stage may have made a post.
        sent_before = request.checkpoint.get("stage") == CREATING
        images = self._images(request, settings, headers, CREATING if sent_before else "uploading")
        body: dict[str, Any] = {
            "author": settings.author,
            "commentary": escape_commentary(request.text),
            "visibility": settings.visibility,
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": settings.reshare_disabled,
        }
        content = self._content(request.media, images)
        if content:
            body["content"] = content
        # Before the step that makes the post visible: a try that may no longer change this
        # target stops here (save_checkpoint raises), and lookup knows a create may be out.
        request.save_checkpoint({"stage": CREATING, "images": images})
        response = self._send("POST", "/rest/posts", headers=headers, json=body)
        if response.status_code in (200, 201):
            urn = response.headers.get("x-restli-id") or response.headers.get("x-linkedin-id")
            if not urn:
                raise OutcomeUnknown(
                    f"linkedin: the post was accepted (HTTP {response.status_code}) but LinkedIn "
                    "named no post URN; it is live, so it is not sent again: check the account",
                    http_status=response.status_code,
                )
            return self._result(urn, response.status_code)
        duplicate_of = self._duplicate_of(response)
        if duplicate_of is not None and sent_before:
            # An earlier try of this target sent this content: the post named is what it made.
            return self._result(duplicate_of, response.status_code)
        if duplicate_of is not None:
            message, code = _error_parts(response)
            raise PermanentError(
                f"linkedin: {message}{f' [{code}]' if code else ''} (HTTP "
                f"{response.status_code}): the earlier post {duplicate_of} has this content, and "
                "no earlier try of this target sent it, so it is not this one; change the text "
                "or delete the older post",
                http_status=response.status_code,
            )
        raise self._error(response)

    @staticmethod
    def _content(media: tuple[Mapping[str, Any], ...], images: list[str]) -> dict[str, Any]:
        entries = []
        for item, urn in zip(media, images, strict=True):
            entry: dict[str, Any] = {"id": urn}
            alt = item.get("alt") or item.get("description")
            if isinstance(alt, str) and alt:
                entry["altText"] = alt
            entries.append(entry)
        if not entries:
            return {}
        if len(entries) == 1:
            return {"media": entries[0]}
        return {"multiImage": {"images": entries}}

    @staticmethod
    def _duplicate_of(response: httpx.Response) -> str | None:
        if response.status_code not in (400, 409, 422):
            return None
        message, code = _error_parts(response)
        text = f"{code or ''} {message} {response.text}"
        if code != "DUPLICATE_POST" and "duplicate" not in text.lower():
            return None
        found = _DUPLICATE_URN.search(text)
        return found.group(0) if found else None

    @staticmethod
    def _result(urn: str, status: int) -> PublishResult:
        return PublishResult(
            platform_post_id=urn,
            url=f"https://www.linkedin.com/feed/update/{urn}/",
            http_status=status,
        )

    # -- images -----------------------------------------------------------------------------

    def _images(
        self,
        request: PublishRequest,
        settings: LinkedInSettings,
        headers: dict[str, str],
        stage: str,
    ) -> list[str]:
        """The image URNs to post with: the saved ones, else new uploads saved under `stage`.

        `stage` stays "creating" after a try that sent the create, so that a re-upload never
        makes the checkpoint say no create was sent.
        """
        if not request.media:
            return []
        saved = request.checkpoint.get("images")
        if (
            isinstance(saved, list)
            and len(saved) == len(request.media)
            and all(isinstance(urn, str) and urn.startswith("urn:li:image:") for urn in saved)
        ):
            return list(saved)
        images = [
            self._upload(settings.author, headers, item, number)
            for number, item in enumerate(request.media, start=1)
        ]
        request.save_checkpoint({"stage": stage, "images": images})
        return images

    def _upload(
        self, owner: str, headers: dict[str, str], item: Mapping[str, Any], number: int
    ) -> str:
        content, mime = media_bytes(self._client, self.name, item)
        mime = (mime or media_mime(item) or "").split(";", 1)[0].strip().lower()
        if mime and mime not in IMAGE_TYPES:
            raise PermanentError(
                f"linkedin: image {number} is {mime}; LinkedIn takes JPG, PNG, GIF"
            )
        response = self._send(
            "POST",
            "/rest/images",
            headers=headers,
            params={"action": "initializeUpload"},
            json={"initializeUploadRequest": {"owner": owner}},
        )
        if response.status_code != 200:
            raise self._error(response)
        body = _json(response)
        value = body.get("value") if isinstance(body, Mapping) else None
        if not (
            isinstance(value, Mapping)
            and isinstance(value.get("image"), str)
            and isinstance(value.get("uploadUrl"), str)
        ):
            raise TransientError(
                f"linkedin: initializeUpload answered (HTTP {response.status_code}) without the "
                "image URN and upload URL; trying again later",
                http_status=response.status_code,
            )
        urn, upload_url = value["image"], value["uploadUrl"]
        upload_headers = {"Authorization": headers["Authorization"]}
        if mime:
            upload_headers["Content-Type"] = mime
        try:
            uploaded = self._client.put(upload_url, content=content, headers=upload_headers)
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc
        if uploaded.status_code not in (200, 201):
            raise self._error(uploaded)
        self._await_image(headers, urn)
        return urn

    def _await_image(self, headers: dict[str, str], urn: str) -> None:
        deadline = self._monotonic() + self._poll_timeout
        while True:
            response = self._send("GET", f"/rest/images/{quote(urn, safe='')}", headers=headers)
            if response.status_code != 200:
                raise self._error(response)
            body = _json(response)
            status = body.get("status") if isinstance(body, Mapping) else None
            if status == "AVAILABLE":
                return
            if status == "PROCESSING_FAILED":
                raise PermanentError(f"linkedin: LinkedIn could not process image {urn}")
            if self._monotonic() >= deadline:
                raise TransientError(
                    f"linkedin: image {urn} was still {status} after {self._poll_timeout:g} s"
                )
            self._sleep(self._poll_interval)

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        if request.checkpoint.get("stage") != CREATING:
            return None  # the stage is saved before POST /rest/posts: it was never sent
        settings = self._settings(request.account)
        headers = self._headers(request.account)
        query = (
            f"q=author&author={quote(settings.author, safe='')}"
            f"&count={self._lookup_limit}&sortBy=LAST_MODIFIED"
        )
        response = self._send(
            "GET", f"/rest/posts?{query}", headers={**headers, "X-RestLi-Method": "FINDER"}
        )
        if response.status_code == 403:
            message, code = _error_parts(response)
            raise LookupUnsupported(
                f"linkedin: reading the author's posts was refused ({message}"
                f"{f', {code}' if code else ''}); it needs r_member_social or "
                "r_organization_social, so a person should check the account"
            )
        if response.status_code != 200:
            raise self._error(response)
        wanted = _comparable(request.text)
        body = _json(response)
        elements = body.get("elements") if isinstance(body, Mapping) else None
        matches = [
            post
            for post in (elements if isinstance(elements, list) else ())
            if isinstance(post, Mapping)
            and isinstance(post.get("id"), str)
            and post.get("lifecycleState", "PUBLISHED") == "PUBLISHED"
            and _comparable(plain_commentary(str(post.get("commentary") or ""))) == wanted
            and _image_count(post) == len(request.media)
        ]
        if len(matches) > 1:
            raise LookupUnsupported(
                f"linkedin: {len(matches)} recent posts have this text; which one (if any) "
                "this publish made cannot be told"
            )
        if not matches:
            return None
        return self._result(str(matches[0]["id"]), response.status_code)

    # -- HTTP -------------------------------------------------------------------------------

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        urn = request.platform_post_id
        if not _POST_URN.fullmatch(urn):
            raise PermanentError(f"linkedin: {urn!r} is not a post URN")
        response = self._send(
            "GET",
            f"/rest/socialActions/{quote(urn, safe='')}",
            headers=self._headers(request.account),
        )
        if response.status_code == 403:
            message, code = _error_parts(response)
            raise PermanentError(
                f"linkedin: {message}{f' [{code}]' if code else ''} (HTTP 403); reading a "
                "post's likes and comments needs r_organization_social (pages) or "
                "r_member_social (members)",
                http_status=403,
            )
        if response.status_code == 404:
            raise PermanentError(f"linkedin: post {urn} is gone (HTTP 404)", http_status=404)
        if response.status_code != 200:
            raise self._error(response)
        body = json_object(self.name, response)
        likes = body.get("likesSummary")
        comments = body.get("commentsSummary")
        likes = likes if isinstance(likes, Mapping) else {}
        comments = comments if isinstance(comments, Mapping) else {}
        first_level = as_count(comments.get("totalFirstLevelComments"))
        return PostMetrics(
            likes=as_count(likes.get("totalLikes")),
            replies=as_count(comments.get("aggregatedTotalComments")),
            extra={"first_level_comments": first_level} if first_level is not None else {},
        )

    @staticmethod
    def _settings(account: AccountRef) -> LinkedInSettings:
        try:
            return LinkedInSettings.model_validate(dict(account.settings))
        except ValidationError as exc:
            raise PermanentError(f"linkedin: the account settings are invalid: {exc}") from None

    def _headers(self, account: AccountRef) -> dict[str, str]:
        token = account.credentials.get("access_token")
        if not token:
            raise NeedsAuth("linkedin: the account has no access token; connect it again")
        return {
            "Authorization": f"Bearer {token}",
            "LinkedIn-Version": self._version,
            "X-Restli-Protocol-Version": "2.0.0",
        }

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, f"{self._api_url}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc

    def _error(self, response: httpx.Response) -> PlatformError:
        status = response.status_code
        message, code = _error_parts(response)
        text = f"linkedin: {message}{f' [{code}]' if code else ''} (HTTP {status})"
        if status == 429:
            return RateLimited(
                text, http_status=status, retry_after=self._throttle_wait(response, message)
            )
        if status >= 500 or status in RETRYABLE_STATUSES:
            retry_after = retry_after_seconds(response.headers, now=self._clock)
            return TransientError(text, http_status=status, retry_after=retry_after)
        if status == 401:
            return NeedsAuth(text, http_status=status)
        if status == 403 and re.search(r"permission|scope|token", message, re.IGNORECASE):
            return NeedsAuth(text, http_status=status)
        return PermanentError(text, http_status=status)

    def _throttle_wait(self, response: httpx.Response, message: str) -> float | None:
        wait = retry_after_seconds(response.headers, now=self._clock)
        if wait is not None:
            return wait
        if re.search(r"\bDAY\b", message):
            now = datetime.fromtimestamp(self._clock(), UTC)
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            return (midnight - now).total_seconds()
        return None


def _image_count(post: Mapping[str, Any]) -> int:
    content = post.get("content") or {}
    if isinstance(content.get("multiImage"), Mapping):
        return len(content["multiImage"].get("images") or ())
    media = content.get("media")
    if isinstance(media, Mapping) and str(media.get("id", "")).startswith("urn:li:image:"):
        return 1
    return 0
