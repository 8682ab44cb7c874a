"""A local TikTok Content Posting API that answers as developers.tiktok.com documents it.

Paths, the {"data", "error": {"code", "message", "log_id"}} envelope, the HTTP statuses of the
Direct Post error table, creator_info, video and photo init (PULL_FROM_URL from verified URL
prefixes only) and status/fetch moving PROCESSING_DOWNLOAD → PUBLISH_COMPLETE after
`processing_polls` fetches, or to FAILED with `fail_reason` when told.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from tests.platforms.servers import FakeServer, Recorded, Reply

if TYPE_CHECKING:
    from tests.platforms.fake_oauth import OAuthAuthority

CREATOR_INFO = "/v2/post/publish/creator_info/query/"
VIDEO_INIT = "/v2/post/publish/video/init/"
CONTENT_INIT = "/v2/post/publish/content/init/"
STATUS = "/v2/post/publish/status/fetch/"
VIDEO_QUERY = "/v2/video/query/"
USER_INFO = "/v2/user/info/"
PRIVACY_LEVELS = ("PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY")


def envelope(code: str = "ok", message: str = "", data: Any = None, log_id: str = "") -> dict:
    """TikTok's answer shape; `data` is {} on errors, as TikTok sends it."""
    return {
        "data": {} if data is None else data,
        "error": {"code": code, "message": message, "log_id": log_id or "202401010000000000"},
    }


def rate_limited() -> dict:
    return envelope(
        "rate_limit_exceeded", "Your request is blocked due to exceeding the API rate limit."
    )


class FakeTikTok(FakeServer):
    """One creator account behind the Content Posting API."""

    def __init__(
        self,
        *,
        token: str = "act.good",
        verified_prefixes: tuple[str, ...] = ("https://media.example.com/",),
    ) -> None:
        super().__init__()
        #: token → "ok" | "expired" | "no_scope"
        self.tokens: dict[str, str] = {token: "ok"}
        self.verified_prefixes = verified_prefixes
        self.creator: dict[str, Any] = {
            "creator_avatar_url": "https://p16.example/avatar.jpeg",
            "creator_username": "alice",
            "creator_nickname": "Alice",
            "privacy_level_options": list(PRIVACY_LEVELS),
            "comment_disabled": False,
            "duet_disabled": False,
            "stitch_disabled": False,
            "max_video_post_duration_sec": 600,
        }
        #: Every accepted init, in order: {"publish_id", "path", "body"}.
        self.inits: list[dict[str, Any]] = []
        #: publish_id → {"status", "polls_left", "fail_reason", "privacy_level", "post_id"}
        self.publishes: dict[str, dict[str, Any]] = {}
        #: status/fetch answers PROCESSING_DOWNLOAD this many times before the final status.
        self.processing_polls = 1
        #: When set, the next accepted init ends FAILED with this fail_reason.
        self.fail_reason: str | None = None
        #: Accepted inits after which spam_risk_too_many_posts is answered (None: no cap).
        self.daily_cap: int | None = None
        #: Whether the app passed TikTok's audit (unaudited: SELF_ONLY only).
        self.audited = True
        #: Whether the token bears the video.list scope (Query Videos).
        self.video_list = True
        #: Counts per video id (see `engage`).
        self.video_counts: dict[str, dict[str, int]] = {}
        self._ids = itertools.count(7_300_000_000_000_000_001)
        self._logs = itertools.count(1)
        #: The user behind the token, as GET /v2/user/info/ gives it (the fields asked for).
        self.user: dict[str, Any] = {
            "open_id": "-000Q8wZ7cdalice",
            "union_id": "c9c60f44-a68e-4f5d-84dd-ce22faeb0ba1",
            "avatar_url": "https://p16.example/avatar.jpeg",
            "display_name": "Alice",
        }
        #: The OAuth 2.0 authorization server (/v2/auth/authorize/, /v2/oauth/token/), once one
        #: is mounted (tests.platforms.fake_oauth.tiktok_authority).
        self.oauth: OAuthAuthority | None = None

    @property
    def posts(self) -> list[dict[str, Any]]:
        """Posts that went out (PUBLISH_COMPLETE)."""
        return [p for p in self.publishes.values() if p["status"] == "PUBLISH_COMPLETE"]

    def reply(self, status: int, code: str = "ok", message: str = "", data: Any = None) -> Reply:
        return Reply(status, envelope(code, message, data, log_id=f"LOG{next(self._logs):06d}"))

    def respond(self, request: Recorded) -> Reply:
        if self.oauth is not None:
            answer = self.oauth.handle(request)
            if answer is not None:
                return answer
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        if request.method == "GET" and request.path == USER_INFO:
            return self._user_info(request)
        if request.method != "POST":
            return self.reply(404, "invalid_params", "Not found")
        if request.path == CREATOR_INFO:
            return self._creator_info()
        if request.path in (VIDEO_INIT, CONTENT_INIT):
            return self._init(request)
        if request.path == STATUS:
            return self._status(request)
        if request.path == VIDEO_QUERY:
            return self._query_videos(request)
        return self.reply(404, "invalid_params", "Not found")

    def engage(self, video_id: str | int, **counts: int) -> None:
        """The video's counts: like_count, comment_count, share_count, view_count."""
        self.video_counts.setdefault(str(video_id), {}).update(counts)

    def delete(self, video_id: str | int) -> None:
        """The creator deleted the video in the app."""
        for publish in self.publishes.values():
            if str(publish["post_id"]) == str(video_id):
                publish["deleted"] = True

    def _query_videos(self, request: Recorded) -> Reply:
        """Query Videos: the creator's videos among `filters.video_ids` (at most 20), with
        the fields asked for in the query string; needs the video.list scope."""
        if not self.video_list:
            return self.reply(
                401,
                "scope_not_authorized",
                "The user did not authorize the scope required for completing this request.",
            )
        fields = [f for f in request.query.get("fields", [""])[0].split(",") if f]
        known = {"id", "like_count", "comment_count", "share_count", "view_count", "title"}
        if not fields or not set(fields) <= known:
            return self.reply(400, "invalid_params", "fields is invalid")
        video_ids = ((request.json() or {}).get("filters") or {}).get("video_ids") or []
        if not video_ids or len(video_ids) > 20:
            return self.reply(400, "invalid_params", "video_ids must have 1 to 20 ids")
        mine = {str(p["post_id"]) for p in self.posts if not p.get("deleted")}
        videos = []
        for video_id in video_ids:
            if str(video_id) not in mine:
                continue
            counts = {"like_count": 0, "comment_count": 0, "share_count": 0, "view_count": 0}
            counts.update(self.video_counts.get(str(video_id), {}))
            video = {"id": str(video_id), "title": "", **counts}
            videos.append({k: v for k, v in video.items() if k in fields})
        return self.reply(200, data={"videos": videos, "cursor": 0, "has_more": False})

    def _check_auth(self, request: Recorded) -> Reply | None:
        header = request.headers.get("authorization", "")
        state = self.tokens.get(header.removeprefix("Bearer ")) if header else None
        if state is None:
            return self.reply(
                401,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
            )
        if state == "expired":
            return self.reply(
                401, "access_token_invalid", "The access_token is invalid or has expired."
            )
        if state == "no_scope":
            return self.reply(
                401,
                "scope_not_authorized",
                "The access_token does not bear user's grant on video.publish scope",
            )
        return None

    def _user_info(self, request: Recorded) -> Reply:
        fields = [f for f in request.query.get("fields", [""])[0].split(",") if f]
        unknown = [f for f in fields if f not in self.user]
        if not fields or unknown:
            return self.reply(400, "invalid_params", f"invalid fields: {','.join(unknown)}")
        return self.reply(200, data={"user": {f: self.user[f] for f in fields}})

    def _creator_info(self) -> Reply:
        return self.reply(200, data=dict(self.creator))

    def _init(self, request: Recorded) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return self.reply(400, "invalid_param", "The request body is not valid JSON")
        post_info = body.get("post_info") or {}
        source = body.get("source_info") or {}
        photo = request.path == CONTENT_INIT
        if photo and (body.get("media_type") != "PHOTO" or body.get("post_mode") != "DIRECT_POST"):
            return self.reply(400, "invalid_param", "media_type and post_mode are required")
        if source.get("source") != "PULL_FROM_URL":
            return self.reply(400, "invalid_param", "source must be PULL_FROM_URL here")
        urls = source.get("photo_images") if photo else [source.get("video_url")]
        if not urls or not all(isinstance(u, str) and u for u in urls):
            return self.reply(400, "invalid_param", "the media URL is missing")
        if photo and len(urls) > 35:
            return self.reply(400, "invalid_param", "photo_images must have at most 35 items")
        text = post_info.get("description" if photo else "title") or ""
        limit = 4000 if photo else 2200
        if len(text.encode("utf-16-le")) // 2 > limit:
            field = "description" if photo else "title"
            return self.reply(400, "invalid_param", f"post_info.{field} is too long")
        privacy = post_info.get("privacy_level")
        if privacy not in self.creator["privacy_level_options"]:
            return self.reply(
                403,
                "privacy_level_option_mismatch",
                "privacy_level is not specified or not among the options from the "
                "privacy_level_options returned in /publish/creator_info/query/ API.",
            )
        if not self.audited and privacy != "SELF_ONLY":
            return self.reply(
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                "Unaudited clients can only post to a private account.",
            )
        if not all(u.startswith(self.verified_prefixes) for u in urls):
            return self.reply(
                403,
                "url_ownership_unverified",
                "To use PULL_FROM_URL as the video transfer method, the developer must verify "
                "the ownership of the URL prefix or domain.",
            )
        if self.daily_cap is not None and len(self.inits) >= self.daily_cap:
            return self.reply(
                403,
                "spam_risk_too_many_posts",
                "The daily post cap from the API is reached for the current user.",
            )
        prefix = "p_pub_url" if photo else "v_pub_url"
        publish_id = f"{prefix}~v2.{len(self.inits) + 1}"
        self.inits.append({"publish_id": publish_id, "path": request.path, "body": body})
        self.publishes[publish_id] = {
            "status": "PROCESSING_DOWNLOAD",
            "polls_left": self.processing_polls,
            "fail_reason": self.fail_reason,
            "privacy_level": privacy,
            "post_id": next(self._ids),
        }
        self.fail_reason = None
        return self.reply(200, data={"publish_id": publish_id})

    def _status(self, request: Recorded) -> Reply:
        publish_id = (request.json() or {}).get("publish_id")
        publish = self.publishes.get(publish_id)
        if publish is None:
            return self.reply(400, "invalid_param", "publish_id is invalid or has expired")
        if publish["status"] == "PROCESSING_DOWNLOAD":
            if publish["polls_left"] > 0:
                publish["polls_left"] -= 1
            elif publish["fail_reason"]:
                publish["status"] = "FAILED"
            else:
                publish["status"] = "PUBLISH_COMPLETE"
        data: dict[str, Any] = {"status": publish["status"], "publicaly_available_post_id": []}
        if publish["status"] == "FAILED":
            data["fail_reason"] = publish["fail_reason"]
        elif publish["status"] == "PUBLISH_COMPLETE" and publish["privacy_level"] != "SELF_ONLY":
            # Only posts others can see get a public id (after moderation).
            data["publicaly_available_post_id"] = [publish["post_id"]]
        return self.reply(200, data=data)
