"""The `facebook` platform: posts on a Facebook Page through the Graph API (Pages API).

Account
    settings (non-secret): `page_id` (required), `attach_first_link` (default true: a text-only
    post sends the first URL of its text as the `link`, so Facebook shows a link preview).
    credentials (secret): `access_token` — a Page access token (pages_manage_posts,
    pages_read_engagement); optional `expires_at` (epoch seconds) for the later token-refresh
    work.

Media items: {"url": "https://...", "kind": "image"|"video", "mime_type"}. Facebook fetches
every URL itself, so they must be public when the post is published.

What the documentation says, and how it is used
-----------------------------------------------
* Posts (https://developers.facebook.com/docs/pages-api/posts): `POST /{page-id}/feed` with
  `message` and `link` answers `{"id": "{page-id}_{post-id}"}`. A photo: `POST
  /{page-id}/photos` with `url` (and `message`) answers `{"id": photo id, "post_id": ...}`.
  Several photos: each uploaded with `published=false`, then `POST /{page-id}/feed` with
  `attached_media[i]={"media_fbid": "<photo id>"}`. A video: `POST /{page-id}/videos` with
  `file_url` and `description` answers `{"id": video id}`.
* Post length (https://developers.facebook.com/docs/graph-api/reference/page/feed): a message
  takes at most 63,206 characters.
* Errors and rate limits: Graph error bodies and usage headers, see meta.py. Code 506
  ("Duplicate Post: duplicate posts cannot be published consecutively",
  https://developers.facebook.com/docs/graph-api/guides/error-handling) on the final post of a
  retry (an earlier try of this target started the final call) is read as "the earlier try
  went out" when exactly one recent post matches; on a first try it is a PermanentError (the
  post in the way is an older one, not this target's).
* Rate limits: Page-token requests are under Business Use Case limits; there is no documented
  per-Page posting quota, so `pacing` is empty.
* Metrics: `GET /{post-id}?fields=reactions.summary(total_count).limit(0),
  comments.summary(total_count).limit(0),shares` (pages_read_engagement;
  https://developers.facebook.com/docs/graph-api/reference/post) → reactions (every kind, not
  only likes) → likes, comments → replies, `shares.count` → reposts (Graph leaves `shares` out
  of a post nobody shared: 0 then, since it was asked for). Views from `GET /{post-id}/insights
  ?metric=post_media_view` (read_insights): the Pages changelog deprecated post_impressions on
  November 15, 2025 for all versions, "Alternative: post_media_view", Meta's "views"; so
  impressions stay None. An insights call refused for a permission (or for the metric) keeps
  the other counts and logs why. A deleted post answers code 100/33 ("does not exist"): a
  PermanentError.

Repeats and crashes (Graph has no idempotency key)
--------------------------------------------------
The checkpoint makes retries safe where it can:
* every unpublished photo id is saved as soon as it is uploaded, so a retry does not upload it
  again (unpublished photos are not visible posts);
* `{"final_started": true, "started_at"}` is saved just before the call that makes the post
  public (/feed, /photos or /videos), and `{"post_id"}` as soon as it answers.
A retry that finds `post_id` returns it. One that finds `final_started` without `post_id` does
not know whether the post went out (a crash or lost answer during that call): it reads the
Page's recent posts first (`GET /{page-id}/published_posts`, `lookup_limit` of them, created
since the try began) and takes the one whose message equals the post's; if none matches it
posts, if several match (or the post has no text to match) it raises OutcomeUnknown so a
person decides. A video is the exception: /videos is processed asynchronously, so a video
post whose answer was lost is not in /published_posts yet, and not finding it proves nothing:
a retry raises OutcomeUnknown without posting again. `may_be_public` is True once
`final_started` (or `post_id`) is saved. A success answer without the post's id → OutcomeUnknown
(the post may be live); an unpublished photo upload answered without its id → TransientError
(it is invisible, and the next try uploads it again).

lookup
------
Only reads: `post_id` saved → found; nothing saved, or only uploaded photos → None (the public
call was never made); `final_started` → the recent-posts match above: one → found, none → None,
several, or a post without text → LookupUnsupported; a video → LookupUnsupported.

What the documentation leaves unclear
-------------------------------------
* Whether a post made a moment ago always shows in /published_posts (the match relies on it),
  and whether Facebook keeps the message exactly as sent (whitespace is collapsed before
  comparing). A post with the same text made by other means in the same window is taken for
  this one.
* The photo caption parameter: the Page photos reference names `message`; it is what is sent.
* How many photos one post may attach, and the photo size and format limits for `url` uploads;
  `validate` does not guess them (Facebook's refusal becomes a PermanentError).
* Whether unpublished photos expire; a retry reuses the saved ids, and a photo Facebook no
  longer has makes the final post fail permanently.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from herald_common.errors import (
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    PlatformError,
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
from herald_common.platforms.http import as_count
from herald_common.platforms.meta import (
    CLOCK_SLACK_SECONDS,
    GRAPH_API_VERSION,
    GraphSession,
    access_token,
    account_settings,
    comparable,
    error_details,
    insights_values,
    media_kind,
    metrics_failure,
    parse_time,
    public_url,
    settings_violations,
)

log = logging.getLogger(__name__)

MAX_MESSAGE = 63_206
DUPLICATE_POST = 506
#: A post's counts without its reactions and comments themselves (limit 0).
METRIC_FIELDS = (
    "reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0),shares"
)

_URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,:;!?'\")]}"


class FacebookSettings(BaseModel):
    """The options a Facebook Page account accepts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    page_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")
    attach_first_link: bool = True


class FacebookCredentials(TokenCredentials):
    """The secrets the Facebook adapter reads."""


def first_link(text: str) -> str | None:
    """The first http(s) URL in the text, without trailing punctuation."""
    match = _URL.search(text)
    return match.group(0).rstrip(_URL_TRAILING) if match else None


class _Ambiguous(Exception):
    """Several recent posts match: which one (if any) a try made cannot be told."""


class FacebookPlatform(Platform):
    """Publishes to the Facebook Page named in each account's settings."""

    name = "facebook"
    pacing = ()

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_url: str = "https://graph.facebook.com",
        api_version: str = GRAPH_API_VERSION,
        lookup_limit: int = 25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._base = f"{api_url.rstrip('/')}/{api_version}"
        self._lookup_limit = lookup_limit
        self._clock = clock

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        violations = settings_violations(FacebookSettings, account)
        if len(text) > MAX_MESSAGE:
            violations.append(
                Violation(
                    "max_characters",
                    f"has {len(text)} characters; a Facebook post takes at most {MAX_MESSAGE}",
                )
            )
        if not text.strip() and not media:
            violations.append(Violation("empty", "a Facebook post needs text or media"))
        kinds = []
        for index, item in enumerate(media, start=1):
            if public_url(item) is None:
                violations.append(
                    Violation(
                        "media_url",
                        f"medium {index} needs a public http(s) URL; Facebook fetches it itself",
                    )
                )
                continue
            kind = media_kind(item)
            if kind is None:
                violations.append(
                    Violation(
                        "media_kind",
                        f"medium {index} is neither an image nor a video (give `kind` or "
                        "`mime_type`)",
                    )
                )
            kinds.append(kind)
        if "video" in kinds and len(media) > 1:
            violations.append(
                Violation(
                    "video_alone",
                    "a Facebook video is posted on its own: one video, without other media",
                )
            )
        return violations

    # -- publish ----------------------------------------------------------------------------

    def publish(self, request: PublishRequest) -> PublishResult:
        settings = account_settings(FacebookSettings, self.name, request.account)
        graph = self._session(request.account)
        page = settings.page_id
        state: dict[str, Any] = dict(request.checkpoint)
        if state.get("post_id"):
            return PublishResult(str(state["post_id"]), url=state.get("url"))
        # An earlier try of this target started the call that makes the post public.
        sent_before = bool(state.get("final_started"))
        if sent_before and _is_video(request):
            raise OutcomeUnknown(
                "facebook: an earlier try sent this video and its answer was lost; Facebook "
                "processes videos before they are listed, so whether it was posted cannot be "
                "told yet, and it is not sent again: check the Page"
            )
        if sent_before:
            try:
                found = self._find(graph, page, request.text, state.get("started_at"))
            except _Ambiguous as exc:
                raise OutcomeUnknown(
                    f"facebook: an earlier try may have posted this already and {exc}; it is "
                    "not sent again: check the Page"
                ) from None
            if found is not None:
                return self._done(request, state, found)
        media = list(request.media)
        if not media:
            data: dict[str, Any] = {"message": request.text}
            link = first_link(request.text) if settings.attach_first_link else None
            if link:
                data["link"] = link
            edge = "feed"
        elif media_kind(media[0]) == "video":
            data = {"file_url": _url(media[0])}
            if request.text:
                data["description"] = request.text
            edge = "videos"
        elif len(media) == 1:
            data = {"url": _url(media[0])}
            if request.text:
                data["message"] = request.text
            edge = "photos"
        else:
            photo_ids = self._upload_photos(graph, page, request, state, media)
            data = {"message": request.text} if request.text else {}
            for index, photo_id in enumerate(photo_ids):
                data[f"attached_media[{index}]"] = json.dumps({"media_fbid": photo_id})
            edge = "feed"
        state.update(final_started=True, started_at=state.get("started_at") or self._clock())
        request.save_checkpoint(dict(state))
        try:
            body = graph.post(f"{page}/{edge}", data)
        except PermanentError as exc:
            details = error_details(exc)
            if details is None or details.code != DUPLICATE_POST:
                raise
            if not sent_before:
                # No earlier try of this target made the call: the post in the way is older.
                raise PermanentError(
                    f"{exc.message}: the Page's previous post has this text, and no earlier "
                    "try of this target sent it, so it is not this one",
                    http_status=exc.http_status,
                ) from exc
            try:
                found = self._find(graph, page, request.text, state.get("started_at"))
            except _Ambiguous:
                found = None
            if found is None:
                raise
            return self._done(request, state, found)
        answered = body.get("post_id") or body.get("id")
        if not isinstance(answered, str | int) or isinstance(answered, bool) or answered == "":
            raise OutcomeUnknown(
                f"facebook: Facebook accepted the {edge} call but answered without the post's "
                "id; the post may be live, so it is not sent again: check the Page"
            )
        post_id = str(answered)
        url = self._permalink(graph, post_id)
        return self._done(request, state, PublishResult(post_id, url=url, http_status=200))

    def _upload_photos(
        self,
        graph: GraphSession,
        page: str,
        request: PublishRequest,
        state: dict[str, Any],
        media: list[Mapping[str, Any]],
    ) -> list[str]:
        photo_ids = [str(p) for p in state.get("photo_ids") or ()][: len(media)]
        for item in media[len(photo_ids) :]:
            body = graph.post(f"{page}/photos", {"url": _url(item), "published": "false"})
            photo_id = body.get("id")
            if not isinstance(photo_id, str | int) or isinstance(photo_id, bool) or photo_id == "":
                raise TransientError(
                    "facebook: Facebook took an unpublished photo but answered without its id; "
                    "trying again (an unpublished photo is not visible)"
                )
            photo_ids.append(str(photo_id))
            state["photo_ids"] = list(photo_ids)
            request.save_checkpoint(dict(state))
        return photo_ids

    def may_be_public(self, checkpoint: Mapping[str, Any]) -> bool:
        """Uploaded unpublished photos are invisible; once the final call started, it may not be."""
        return bool(checkpoint.get("final_started") or checkpoint.get("post_id"))

    def _done(
        self, request: PublishRequest, state: dict[str, Any], result: PublishResult
    ) -> PublishResult:
        state.update(post_id=result.platform_post_id, url=result.url)
        request.save_checkpoint(dict(state))
        return result

    def _permalink(self, graph: GraphSession, post_id: str) -> str | None:
        """The post's URL, best effort: the post is out, so a failure here is not an error."""
        try:
            body = graph.get(post_id, fields="permalink_url")
        except PlatformError as exc:
            log.warning("facebook: permalink of %s not readable: %s", post_id, exc.message)
            return None
        permalink = body.get("permalink_url")
        if not permalink:
            return None
        permalink = str(permalink)
        return f"https://www.facebook.com{permalink}" if permalink.startswith("/") else permalink

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        state = request.checkpoint
        if state.get("post_id"):
            return PublishResult(str(state["post_id"]), url=state.get("url"))
        if not state.get("final_started"):
            # The state is saved before the call that makes a post public: it was never made.
            return None
        if _is_video(request):
            raise LookupUnsupported(
                "facebook: the video's call was sent, and a video is not listed until Facebook "
                "has processed it, so not finding it proves nothing; a person should check the "
                "Page"
            )
        settings = account_settings(FacebookSettings, self.name, request.account)
        graph = self._session(request.account)
        try:
            return self._find(graph, settings.page_id, request.text, state.get("started_at"))
        except _Ambiguous as exc:
            raise LookupUnsupported(f"facebook: {exc}") from None

    def _find(
        self, graph: GraphSession, page: str, text: str, started_at: Any
    ) -> PublishResult | None:
        """The one recent Page post with this message; None if none; _Ambiguous otherwise."""
        wanted = comparable(text)
        if not wanted:
            raise _Ambiguous("a post without text cannot be told from others")
        body = graph.get(
            f"{page}/published_posts",
            fields="id,message,created_time,permalink_url",
            limit=self._lookup_limit,
        )
        since = started_at if isinstance(started_at, int | float) else None
        matches = []
        for item in body.get("data") or ():
            if not isinstance(item, Mapping) or not item.get("id"):
                continue
            if comparable(item.get("message")) != wanted:
                continue
            created = parse_time(item.get("created_time"))
            if since is not None and created is not None and created < since - CLOCK_SLACK_SECONDS:
                continue
            matches.append(item)
        if len(matches) > 1:
            raise _Ambiguous(f"{len(matches)} recent posts have this text")
        if not matches:
            return None
        item = matches[0]
        permalink = item.get("permalink_url")
        return PublishResult(str(item["id"]), url=str(permalink) if permalink else None)

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        graph = self._session(request.account)
        post_id = request.platform_post_id
        try:
            body = graph.get(post_id, fields=METRIC_FIELDS)
        except PlatformError as exc:
            raise metrics_failure(self.name, exc, "the post's reactions and comments") from exc
        shares = body.get("shares")
        views = None
        try:
            insights = graph.get(f"{post_id}/insights", metric="post_media_view")
        except (PermanentError, NeedsAuth) as exc:
            log.info("facebook: no views for post %s: %s", post_id, exc.message)
        else:
            views = insights_values(insights).get("post_media_view")
        return PostMetrics(
            likes=_summary_count(body.get("reactions")),
            replies=_summary_count(body.get("comments")),
            reposts=as_count(shares.get("count")) if isinstance(shares, Mapping) else 0,
            views=views,
        )

    def _session(self, account: AccountRef) -> GraphSession:
        return GraphSession(self._client, self.name, self._base, access_token(self.name, account))


def _summary_count(edge: Any) -> int | None:
    """`summary.total_count` of an edge asked for with .summary(total_count)."""
    summary = edge.get("summary") if isinstance(edge, Mapping) else None
    return as_count(summary.get("total_count")) if isinstance(summary, Mapping) else None


def _is_video(request: PublishRequest) -> bool:
    """Whether the post is a video (published through /videos)."""
    return bool(request.media) and media_kind(request.media[0]) == "video"


def _url(item: Mapping[str, Any]) -> str:
    return public_url(item) or str(item.get("url") or "")
