"""A local X API v2 that answers as docs.x.com says: posts, v2 media upload, users, limits."""

from __future__ import annotations

import email.parser
import email.policy
import html
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.platforms.servers import FakeServer, Recorded, Reply

if TYPE_CHECKING:
    from tests.platforms.fake_oauth import OAuthAuthority

USER = {"id": "2244994945", "name": "Alice", "username": "alice"}

UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
DUPLICATE = {
    "detail": "You are not allowed to create a Tweet with duplicate content.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}
TOO_MANY = {
    "title": "Too Many Requests",
    "detail": "Too Many Requests",
    "type": "about:blank",
    "status": 429,
}
UNAVAILABLE = {
    "title": "Service Unavailable",
    "detail": "Service Unavailable",
    "type": "about:blank",
    "status": 503,
}
UNSUPPORTED_AUTH = {
    "title": "Unsupported Authentication",
    "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
    "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
    "type": "https://api.twitter.com/2/problems/unsupported-authentication",
    "status": 403,
}

_URL = re.compile(r"https?://[^\s]+")


def invalid_request(parameter: str, value: Any, message: str) -> dict[str, Any]:
    """X's problem body for a request with an invalid parameter."""
    return {
        "errors": [{"parameters": {parameter: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }


def multipart(request: Recorded) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name."""
    content_type = request.headers.get("content-type", "")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
    )
    fields: dict[str, bytes] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = part.get_payload(decode=True) or b""
    return fields


@dataclass
class Media:
    id: str
    category: str
    media_type: str
    total_bytes: int
    content: bytearray = field(default_factory=bytearray)
    segments: list[int] = field(default_factory=list)
    state: str = "succeeded"  # pending | in_progress | succeeded | failed
    polls_left: int = 0
    finalized: bool = False
    alt_text: str | None = None

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "media_key": f"{'3' if self.category == 'tweet_image' else '7'}_{self.id}",
            "size": len(self.content),
            "expires_after_secs": 86400,
        }
        if self.category != "tweet_image" and self.finalized:
            info: dict[str, Any] = {"state": self.state}
            if self.state in ("pending", "in_progress"):
                info["check_after_secs"] = 2
            if self.state == "failed":
                info["error"] = {"code": 1, "name": "InvalidMedia", "message": "Unsupported video"}
            data["processing_info"] = info
        return data


class FakeX(FakeServer):
    """Posts with X's duplicate-content refusal, v2 media uploads, rate-limit headers."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = {"good-token": "valid", "expired-token": "expired"}
        self.user = dict(USER)
        self.posts: dict[str, dict[str, Any]] = {}  # id → stored post (raw text)
        self.media: dict[str, Media] = {}
        #: STATUS answers in_progress this many times before a video is ready.
        self.processing_polls = 0
        #: The next video to finish processing fails instead.
        self.fail_processing = False
        #: Posts this user may still make in the 15-minute window and in the day.
        self.window_remaining = 100
        self.day_remaining: int | None = None
        #: The next create posts, then answers 503 as if the answer were lost on the way.
        self.lose_next_create = False
        #: Refuse every create as a duplicate (as if an older post not in view blocked it).
        self.always_duplicate = False
        #: The next successful create answers with this body instead of the documented one.
        self.create_body: Any = None
        #: X's clock: a post's created_at (whole seconds, as X gives it).
        self.clock: Callable[[], float] = time.time
        self.reset_at = int(time.time()) + 900
        self.day_reset_at = int(time.time()) + 86_400
        #: public_metrics per post id (see `engage`).
        self.metrics: dict[str, dict[str, int]] = {}
        self._ids = itertools.count(1_850_000_000_000_000_000)
        self._slugs = itertools.count(1)
        #: The OAuth 2.0 authorization server (/i/oauth2/authorize, /2/oauth2/token), once one
        #: is mounted (tests.platforms.fake_oauth.x_authority).
        self.oauth: OAuthAuthority | None = None

    # -- dispatch -------------------------------------------------------------------------

    def respond(self, request: Recorded) -> Reply:
        if self.oauth is not None:
            answer = self.oauth.handle(request)
            if answer is not None:
                return answer
        header = request.headers.get("authorization", "")
        state = self.tokens.get(header.removeprefix("Bearer "))
        if not header.startswith("Bearer ") or state != "valid":
            return Reply(401, UNAUTHORIZED)
        path, method = request.path, request.method
        if method == "POST" and path == "/2/tweets":
            return self._create(request)
        if method == "GET" and path == "/2/users/me":
            return Reply(200, {"data": self.user})
        if method == "GET" and path == f"/2/users/{self.user['id']}/tweets":
            return self._timeline(request)
        if method == "POST" and path == "/2/media/upload":
            return self._simple_upload(request)
        if method == "GET" and path == "/2/media/upload":
            return self._status(request)
        if method == "POST" and path == "/2/media/upload/initialize":
            return self._initialize(request)
        match = re.fullmatch(r"/2/media/upload/([0-9]+)/(append|finalize)", path)
        if method == "POST" and match:
            media = self.media.get(match.group(1))
            if media is None:
                return Reply(400, invalid_request("id", match.group(1), "Invalid media id"))
            return (
                self._append(media, request)
                if match.group(2) == "append"
                else self._finalize(media)
            )
        if method == "POST" and path == "/2/media/metadata":
            return self._metadata(request)
        match = re.fullmatch(r"/2/tweets/([0-9]+)", path)
        if method == "GET" and match:
            return self._lookup(match.group(1), request)
        return Reply(
            404, {"title": "Not Found Error", "detail": "Not Found", "type": "about:blank"}
        )

    # -- posts ----------------------------------------------------------------------------

    def _limit_headers(self) -> dict[str, str]:
        headers = {
            "x-rate-limit-limit": "100",
            "x-rate-limit-remaining": str(max(self.window_remaining, 0)),
            "x-rate-limit-reset": str(self.reset_at),
        }
        if self.day_remaining is not None:
            headers.update(
                {
                    "x-user-limit-24hour-limit": "17",
                    "x-user-limit-24hour-remaining": str(max(self.day_remaining, 0)),
                    "x-user-limit-24hour-reset": str(self.day_reset_at),
                }
            )
        return headers

    def _create(self, request: Recorded) -> Reply:
        if self.window_remaining <= 0 or self.day_remaining == 0:
            return Reply(429, TOO_MANY, self._limit_headers())
        body = request.json()
        text = body.get("text", "")
        media_ids = (body.get("media") or {}).get("media_ids") or []
        if not text and not media_ids:
            return Reply(400, invalid_request("text", text, "Text or media is required"))
        if len(_URL.sub("x" * 23, text)) > 280:
            return Reply(400, invalid_request("text", text, "Text is too long"))
        for media_id in media_ids:
            media = self.media.get(media_id)
            if media is None or media.state != "succeeded":
                return Reply(
                    400,
                    invalid_request("media.media_ids", media_ids, "Your media IDs are invalid."),
                )
        if self.always_duplicate or any(p["text"] == text for p in self.posts.values()):
            return Reply(403, DUPLICATE, self._limit_headers())
        self.window_remaining -= 1
        if self.day_remaining is not None:
            self.day_remaining -= 1
        post_id = str(next(self._ids))
        self.posts[post_id] = {
            "id": post_id,
            "text": text,
            "media_ids": list(media_ids),
            "reply_settings": body.get("reply_settings"),
            "created_at": int(self.clock()),
        }
        if self.lose_next_create:
            self.lose_next_create = False
            return Reply(503, UNAVAILABLE)
        if self.create_body is not None:
            answer, self.create_body = self.create_body, None
            return Reply(201, answer, self._limit_headers())
        return Reply(
            201,
            {"data": {"id": post_id, "text": text, "edit_history_tweet_ids": [post_id]}},
            self._limit_headers(),
        )

    def engage(self, post_id: str, **counts: int) -> None:
        """People engaged with the post: like_count, retweet_count, reply_count, quote_count,
        bookmark_count, impression_count (public_metrics' names)."""
        self.metrics.setdefault(post_id, {}).update(counts)

    def _lookup(self, post_id: str, request: Recorded) -> Reply:
        """GET /2/tweets/:id: a deleted (or unknown) post is HTTP 200 with only `errors`."""
        post = self.posts.get(post_id)
        if post is None:
            return Reply(
                200,
                {
                    "errors": [
                        {
                            "value": post_id,
                            "detail": f"Could not find tweet with id: [{post_id}].",
                            "title": "Not Found Error",
                            "resource_type": "tweet",
                            "parameter": "id",
                            "resource_id": post_id,
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                },
            )
        data: dict[str, Any] = {
            "id": post_id,
            "text": post["text"],
            "edit_history_tweet_ids": [post_id],
        }
        fields = request.query.get("tweet.fields", [""])[0].split(",")
        if "public_metrics" in fields:
            data["public_metrics"] = {
                "retweet_count": 0,
                "reply_count": 0,
                "like_count": 0,
                "quote_count": 0,
                "bookmark_count": 0,
                "impression_count": 0,
                **self.metrics.get(post_id, {}),
            }
        return Reply(200, {"data": data})

    def add_post(self, text: str, created_at: float) -> str:
        """A post made elsewhere (by hand on x.com) at `created_at`, which the API never saw."""
        post_id = str(next(self._ids))
        self.posts[post_id] = {
            "id": post_id,
            "text": text,
            "media_ids": [],
            "reply_settings": None,
            "created_at": int(created_at),
        }
        return post_id

    def render(self, post: dict[str, Any]) -> dict[str, Any]:
        """A post as GET /2/users/:id/tweets shows it: t.co links, entities, escaped text."""
        urls: list[dict[str, Any]] = []
        text = post["text"]

        def shorten(match: re.Match[str]) -> str:
            short = f"https://t.co/{next(self._slugs):010d}"
            urls.append({"url": short, "expanded_url": match.group(0), "display_url": "…"})
            return short

        text = _URL.sub(shorten, text)
        media_keys = [self.media[m].public()["media_key"] for m in post["media_ids"]]
        if media_keys:
            short = f"https://t.co/{next(self._slugs):010d}"
            text = f"{text} {short}".strip()
            urls.append(
                {
                    "url": short,
                    "expanded_url": "https://x.com/alice/photo/1",
                    "media_key": media_keys[0],
                }
            )
        rendered: dict[str, Any] = {
            "id": post["id"],
            "text": html.escape(text, quote=False),
            "edit_history_tweet_ids": [post["id"]],
            "created_at": datetime.fromtimestamp(post["created_at"], UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }
        if urls:
            rendered["entities"] = {"urls": urls}
        if media_keys:
            rendered["attachments"] = {"media_keys": media_keys}
        return rendered

    def _timeline(self, request: Recorded) -> Reply:
        limit = int(request.query.get("max_results", ["10"])[0])
        if not 5 <= limit <= 100:
            return Reply(400, invalid_request("max_results", limit, "max_results out of range"))
        newest = sorted(self.posts.values(), key=lambda p: int(p["id"]), reverse=True)[:limit]
        data = [self.render(p) for p in newest]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        return Reply(200, {"data": data, "meta": meta} if data else {"meta": meta})

    # -- media ----------------------------------------------------------------------------

    def _simple_upload(self, request: Recorded) -> Reply:
        fields = multipart(request)
        category = fields.get("media_category", b"").decode()
        if "media" not in fields or category != "tweet_image":
            return Reply(400, invalid_request("media_category", category, "Invalid media"))
        media_id = str(next(self._ids))
        media = Media(
            media_id, category, fields.get("media_type", b"").decode(), len(fields["media"])
        )
        media.content.extend(fields["media"])
        media.finalized = True
        self.media[media_id] = media
        return Reply(200, {"data": media.public()})

    def _initialize(self, request: Recorded) -> Reply:
        body = request.json()
        category = body.get("media_category")
        if category not in ("tweet_gif", "tweet_video") or not body.get("total_bytes"):
            return Reply(400, invalid_request("media_category", category, "Invalid media"))
        media_id = str(next(self._ids))
        self.media[media_id] = Media(
            media_id,
            category,
            body.get("media_type", ""),
            int(body["total_bytes"]),
            state="pending",
        )
        return Reply(200, {"data": self.media[media_id].public()})

    def _append(self, media: Media, request: Recorded) -> Reply:
        fields = multipart(request)
        segment = int(fields.get("segment_index", b"-1"))
        if segment != len(media.segments) or "media" not in fields:
            return Reply(400, invalid_request("segment_index", segment, "Invalid segment"))
        media.segments.append(segment)
        media.content.extend(fields["media"])
        return Reply(200, {"data": {"expires_at": int(time.time()) + 86400}})

    def _finalize(self, media: Media) -> Reply:
        if len(media.content) != media.total_bytes:
            return Reply(400, invalid_request("id", media.id, "Segments do not add up to size"))
        media.finalized = True
        if self.fail_processing:
            self.fail_processing = False
            media.state, media.polls_left = "pending", -1  # fails at the first STATUS
        else:
            media.polls_left = self.processing_polls
            media.state = "pending" if self.processing_polls else "succeeded"
        return Reply(200, {"data": media.public()})

    def _status(self, request: Recorded) -> Reply:
        media = self.media.get(request.query.get("media_id", [""])[0])
        if request.query.get("command") != ["STATUS"] or media is None:
            return Reply(400, invalid_request("media_id", None, "Invalid media id"))
        if media.polls_left < 0:
            media.state = "failed"
        elif media.polls_left > 0:
            media.polls_left -= 1
            media.state = "in_progress"
        else:
            media.state = "succeeded"
        return Reply(200, {"data": media.public()})

    def _metadata(self, request: Recorded) -> Reply:
        body = request.json()
        media = self.media.get(str(body.get("id")))
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if media is None or not isinstance(alt, str) or len(alt) > 1000:
            return Reply(400, invalid_request("id", body.get("id"), "Invalid metadata"))
        media.alt_text = alt
        return Reply(
            200, {"data": {"id": media.id, "associated_metadata": {"alt_text": {"text": alt}}}}
        )
