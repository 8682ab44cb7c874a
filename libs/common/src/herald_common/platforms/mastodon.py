"""The `mastodon` platform: statuses on any Mastodon server, through its REST API.

Account
    settings (non-secret): `instance_url` (required, e.g. "https://mastodon.social"),
    `max_characters` (default 500), `visibility` (public|unlisted|private|direct),
    `spoiler_text`, `language` (ISO 639-1), `sensitive` (bool).
    credentials (secret): `access_token` (OAuth user token with write:statuses, write:media,
    read:accounts, read:statuses).

Media items: {"url": ...} or {"data": <base64>}, with optional "description" (or "alt"),
"mime_type" and "filename".

What the documentation says, and how it is used
-----------------------------------------------
* POST /api/v1/statuses (https://docs.joinmastodon.org/methods/statuses/#create): the
  `Idempotency-Key` header "prevent[s] duplicate submissions of the same status ...
  Idempotency keys are stored for up to 1 hour." Mastodon's PostStatusService keeps
  `idempotency:status:<account id>:<key>` → status id in Redis for 3,600 s, written *after* the
  status is created, and a repeat with that key returns the stored status instead of posting.
  So `publish` sends the request's key, and a retry within the hour cannot post twice.
  Errors: 401 `{"error": "The access token is invalid"}`, 422 `{"error": "Validation failed:
  ..."}`.
* POST /api/v2/media (https://docs.joinmastodon.org/methods/media/#v2): 200 when processed
  synchronously (images since 4.0), 202 with `"url": null` while processing; then
  GET /api/v1/media/:id answers 206 while processing and 200 with the `url` once done.
  `publish` polls (interval and deadline are constructor arguments) and gives up with a
  TransientError. Uploads are not idempotent: a retried publish uploads again; Mastodon removes
  unattached media on its own.
* Rate limits (https://docs.joinmastodon.org/api/rate-limits/): X-RateLimit-Limit, -Remaining
  and -Reset, "Timestamp when your rate limit will reset" (an ISO 8601 time in practice). A 429
  becomes a TransientError whose `retry_after` comes from Retry-After or else X-RateLimit-Reset.
* Length (StatusLengthValidator, and docs.joinmastodon.org/user/posting): spoiler text plus
  text, counted in grapheme clusters, where every http(s) URL counts as 23 characters and a
  mention `@user@domain` counts only `@user`. `validate` counts the same way, with the
  approximations of herald_common.platforms.http.graphemes and simplified URL/mention patterns.
  At most 4 attachments.
* Metrics (https://docs.joinmastodon.org/methods/statuses/#get, entity Status): GET
  /api/v1/statuses/:id (read:statuses) gives `favourites_count` → likes, `reblogs_count` →
  reposts, `replies_count` → replies and, from Mastodon 4.5 (API version 7,
  https://docs.joinmastodon.org/client/quotes), `quotes_count` → quotes (None on older
  servers). Mastodon counts no views or impressions. A deleted status answers 404 "Record not
  found": a PermanentError, so nobody asks again.

lookup (reconciliation)
-----------------------
Mastodon offers no "find the status posted with this Idempotency-Key". Re-sending the POST with
the same key would return the original within the hour, but it would *post* when nothing went
out (lookup must only ask), and it would post a duplicate once the hour has passed (the request
carries no time to tell). So `lookup` only reads: it fetches the account's newest statuses
(GET /api/v1/accounts/verify_credentials, then GET /api/v1/accounts/:id/statuses) and compares
their text (HTML stripped, mentions reduced to `@user`, whitespace collapsed), spoiler text and
number of attachments with the request's. One match → that status; none → None; several →
LookupUnsupported, so a person decides. Known limits: a status posted by other means with the
very same text is taken for ours, and one that is older than the newest `lookup_limit` (40)
statuses is not found.

What the documentation leaves unclear
-------------------------------------
* Whether the key is replayed when the first request is still in flight (the source stores it
  only after creating the status, so two concurrent requests can both post) and whether a
  replayed response differs from a fresh one (the source returns the same Status, HTTP 200).
* The exact format of X-RateLimit-Reset (the docs say "timestamp"); ISO 8601 and epoch seconds
  are both accepted here.
* Which 403 bodies mean "token lacks a scope" rather than "account disabled": 403 with a
  scope/token message becomes NeedsAuth, any other 403 a PermanentError.
* Retries after the 1-hour window: if a request timed out after Mastodon accepted it and the
  retry comes more than an hour later (a long Retry-After), it posts again. The publisher's
  backoff (at most 300 s, 3 attempts) keeps ordinary retries well inside the window.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from herald_common.errors import NeedsAuth, PermanentError, TransientError
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
    error_text,
    filename_for,
    grapheme_length,
    json_object,
    media_bytes,
    status_error,
    transport_error,
)

VISIBILITIES = ("public", "unlisted", "private", "direct")
MAX_MEDIA = 4
URL_PLACEHOLDER_CHARS = 23
_RESET_HEADERS = ("x-ratelimit-reset",)

# Simplified forms of the twitter-text extraction Mastodon uses for length concessions.
_URL = re.compile(r"(?<![\w/@])https?://[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,:;!?'\")]}"
_MENTION = re.compile(
    r"(?<![\w/@.])@(?P<user>[a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)"
    r"(?:@(?P<domain>[a-z0-9.-]+\.[a-z0-9-]+))?",
    re.IGNORECASE,
)
_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<br\s*/?>|</p>\s*<p[^>]*>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


class MastodonSettings(BaseModel):
    """The non-secret options of a Mastodon account."""

    model_config = ConfigDict(extra="forbid", strict=True)

    instance_url: str = Field(pattern=r"^https?://[^/\s]+/?$", max_length=300)
    max_characters: int = Field(default=500, ge=1, le=1_000_000)
    visibility: Literal["public", "unlisted", "private", "direct"] | None = None
    spoiler_text: str | None = Field(default=None, max_length=500)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$")
    sensitive: bool = False


class MastodonCredentials(BaseModel):
    """The secrets of a Mastodon account."""

    model_config = ConfigDict(extra="forbid", strict=True)

    access_token: str = Field(min_length=1, max_length=4000)


def countable_length(text: str, spoiler_text: str = "") -> int:
    """The length Mastodon checks against its limit: URLs count 23, mentions only `@user`."""
    return grapheme_length(spoiler_text + _countable_text(text))


def _countable_text(text: str) -> str:
    def url(match: re.Match[str]) -> str:
        value = match.group(0)
        stripped = value.rstrip(_URL_TRAILING)
        return "x" * URL_PLACEHOLDER_CHARS + value[len(stripped) :]

    text = _URL.sub(url, text)
    return _MENTION.sub(lambda m: "@" + m.group("user"), text)


def _comparable(text: str) -> str:
    """Plain text as Mastodon renders it, reduced for comparison."""
    text = _MENTION.sub(lambda m: "@" + m.group("user"), text)
    return _SPACE.sub(" ", text).strip()


def _plain(content_html: str) -> str:
    return html.unescape(_TAG.sub("", _BREAK.sub("\n", content_html or "")))


class MastodonPlatform(Platform):
    """Publishes statuses to the Mastodon server named in each account's settings."""

    name = "mastodon"
    # "All endpoints and methods: 300 requests / 5 minutes" per account; a publish makes one
    # request per attachment plus one, so at most 60 posts per 5 minutes keeps far below it.
    # Media uploads have their own limit of 30 per 30 minutes per account.
    pacing = (Pace("account", 60, 300),)

    def __init__(
        self,
        client: httpx.Client,
        *,
        media_poll_interval: float = 1.0,
        media_timeout: float = 60.0,
        lookup_limit: int = 40,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._poll_interval = media_poll_interval
        self._media_timeout = media_timeout
        self._lookup_limit = lookup_limit
        self._sleep = sleep
        self._monotonic = monotonic

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        settings = account.settings
        violations: list[Violation] = []
        limit = int(settings.get("max_characters", 500))
        length = countable_length(text, str(settings.get("spoiler_text") or ""))
        if length > limit:
            violations.append(
                Violation(
                    "max_characters",
                    f"counts {length} characters as Mastodon counts them (links 23, mentions "
                    f"without their domain, content warning included); this server takes at "
                    f"most {limit}",
                )
            )
        if not text.strip() and not media:
            violations.append(Violation("empty", "a status needs text or media"))
        if len(media) > MAX_MEDIA:
            violations.append(
                Violation("max_media", f"has {len(media)} attachments; Mastodon takes at most 4")
            )
        for index, item in enumerate(media):
            if not (item.get("url") or item.get("data")):
                violations.append(Violation("media", f"attachment {index + 1} has no url or data"))
        visibility = settings.get("visibility")
        if visibility is not None and visibility not in VISIBILITIES:
            violations.append(
                Violation(
                    "visibility",
                    f"is {visibility!r}; Mastodon takes one of {', '.join(VISIBILITIES)}",
                )
            )
        return violations

    # -- publish ----------------------------------------------------------------------------

    def publish(self, request: PublishRequest) -> PublishResult:
        account = request.account
        base, headers = self._endpoint(account)
        media_ids = [
            self._upload(base, headers, item, index) for index, item in enumerate(request.media)
        ]
        form: dict[str, Any] = {"status": request.text}
        for key in ("visibility", "spoiler_text", "language"):
            value = account.settings.get(key)
            if value:
                form[key] = str(value)
        if account.settings.get("sensitive"):
            form["sensitive"] = "true"
        if media_ids:
            form["media_ids[]"] = media_ids
        response = self._send(
            "POST",
            f"{base}/api/v1/statuses",
            headers={**headers, "Idempotency-Key": request.idempotency_key},
            data=form,
        )
        if response.status_code != 200:
            raise self._error(response)
        status = response.json()
        return PublishResult(
            platform_post_id=str(status["id"]),
            url=status.get("url") or status.get("uri"),
            http_status=response.status_code,
        )

    def _upload(
        self, base: str, headers: dict[str, str], item: Mapping[str, Any], index: int
    ) -> str:
        content, mime = media_bytes(self._client, self.name, item)
        files = {"file": (filename_for(item, index), content, mime or "application/octet-stream")}
        data = {}
        description = item.get("description") or item.get("alt")
        if description:
            data["description"] = str(description)
        response = self._send(
            "POST", f"{base}/api/v2/media", headers=headers, files=files, data=data
        )
        if response.status_code == 200:
            return str(response.json()["id"])
        if response.status_code != 202:
            raise self._error(response)
        media_id = str(response.json()["id"])
        self._await_processing(base, headers, media_id)
        return media_id

    def _await_processing(self, base: str, headers: dict[str, str], media_id: str) -> None:
        deadline = self._monotonic() + self._media_timeout
        while True:
            self._sleep(self._poll_interval)
            response = self._send("GET", f"{base}/api/v1/media/{media_id}", headers=headers)
            if response.status_code == 200 and response.json().get("url"):
                return
            if response.status_code not in (200, 206):
                raise self._error(response)
            if self._monotonic() >= deadline:
                raise TransientError(
                    f"mastodon: media {media_id} was still processing after "
                    f"{self._media_timeout:g} s",
                    http_status=response.status_code,
                )

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        account = request.account
        base, headers = self._endpoint(account)
        response = self._send("GET", f"{base}/api/v1/accounts/verify_credentials", headers=headers)
        if response.status_code != 200:
            raise self._error(response)
        account_id = response.json()["id"]
        response = self._send(
            "GET",
            f"{base}/api/v1/accounts/{account_id}/statuses",
            headers=headers,
            params={"limit": self._lookup_limit, "exclude_reblogs": "true"},
        )
        if response.status_code != 200:
            raise self._error(response)
        wanted = _comparable(request.text)
        spoiler = str(account.settings.get("spoiler_text") or "")
        matches = [
            status
            for status in response.json()
            if _comparable(_plain(status.get("content", ""))) == wanted
            and (status.get("spoiler_text") or "") == spoiler
            and len(status.get("media_attachments") or ()) == len(request.media)
        ]
        if len(matches) > 1:
            raise LookupUnsupported(
                f"mastodon: {len(matches)} recent statuses have this text; which one (if any) "
                "this publish made cannot be told"
            )
        if not matches:
            return None
        status = matches[0]
        return PublishResult(
            platform_post_id=str(status["id"]),
            url=status.get("url") or status.get("uri"),
            http_status=response.status_code,
        )

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        base, headers = self._endpoint(request.account)
        status_id = request.platform_post_id
        # Mastodon's ids are digits; other servers of its API (Pleroma, Akkoma) use letters too.
        path = f"/api/v1/statuses/{quote(status_id, safe='')}"
        response = self._send("GET", base + path, headers=headers)
        if response.status_code == 404:
            raise PermanentError(
                f"mastodon: status {status_id} is gone (deleted, or no longer visible to the "
                "account) (HTTP 404)",
                http_status=404,
            )
        if response.status_code != 200:
            raise self._error(response)
        status = json_object(self.name, response)
        return PostMetrics(
            likes=as_count(status.get("favourites_count")),
            reposts=as_count(status.get("reblogs_count")),
            replies=as_count(status.get("replies_count")),
            quotes=as_count(status.get("quotes_count")),
        )

    # -- HTTP -------------------------------------------------------------------------------

    def _endpoint(self, account: AccountRef) -> tuple[str, dict[str, str]]:
        base = str(account.settings.get("instance_url") or "").rstrip("/")
        if not base.startswith(("https://", "http://")):
            raise PermanentError("mastodon: the account has no instance_url setting")
        token = account.credentials.get("access_token")
        if not token:
            raise NeedsAuth("mastodon: the account has no access token; connect it again")
        return base, {"Authorization": f"Bearer {token}"}

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc

    def _error(self, response: httpx.Response) -> Exception:
        if response.status_code == 403:
            text = error_text(response)
            if re.search(r"scope|token", text, re.IGNORECASE):
                return NeedsAuth(f"mastodon: {text} (HTTP 403)", http_status=403)
        return status_error(self.name, response, reset_headers=_RESET_HEADERS)
