"""Local fakes of Meta's Graph hosts: a Facebook Page, an Instagram account, a Threads profile.

They answer as the Graph API documentation says: versioned paths, Bearer tokens, Graph error
bodies `{"error": {"message", "type", "code", "error_subcode", "is_transient", "fbtrace_id"}}`
with HTTP 400, an expired token (code 190, subcode 463), throttling (codes 4/32/80002 with the
X-App-Usage and X-Business-Use-Case-Usage headers), containers that stay IN_PROGRESS for
`processing_polls` status reads before they are FINISHED, PUBLISHED after a publish, and the
24-hour publishing quotas.

They also answer the login side (see `FakeGraph`'s OAuth section and `FakeThreads`): the app
registered with them (`app_id`, `app_secret`), people who grant it access (`authorize` gives the
code the dialog would send back: single-use, bound to its redirect_uri, valid 10 minutes), the
code exchange, long-lived tokens, Pages and their tokens (/me/accounts), /me, Threads'
th_exchange_token and th_refresh_token (refused for tokens under 24 hours old, by `clock`), and
`deauthorize` (the person removed the app, or changed their password). Every token they issue is
put in `tokens`, so the publishing endpoints take it; `oauth_calls` counts the login calls.

`drop_after` names an operation ("publish", "feed", "photos", "videos") whose next call takes
effect and then loses its answer: the connection is closed without a response, as when a worker
is killed or the network fails after Meta accepted the call.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from herald_common.platforms.base import AccountRef, PublishRequest
from tests.platforms.servers import FakeServer, Recorded, Reply

IN_PROGRESS, FINISHED, PUBLISHED, ERROR, EXPIRED = (
    "IN_PROGRESS",
    "FINISHED",
    "PUBLISHED",
    "ERROR",
    "EXPIRED",
)


class DropConnection(Exception):
    """Raised inside a handler: the server closes the connection without answering."""


class SimulatedCrash(Exception):
    """The worker dies: raised by CheckpointStore right after it stored a checkpoint."""


class CheckpointStore:
    """Keeps checkpoints as the publisher does: each save durably replaces the last one."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.saves: list[dict[str, Any]] = []
        #: When it returns true for a saved state, the save is kept and then the "worker dies".
        self.crash_when: Callable[[Mapping[str, Any]], bool] | None = None

    def save(self, state: Mapping[str, Any]) -> None:
        self.state = dict(state)
        self.saves.append(dict(state))
        if self.crash_when is not None and self.crash_when(state):
            self.crash_when = None
            raise SimulatedCrash(f"killed after saving {sorted(state)}")

    def request(
        self,
        account: AccountRef,
        text: str = "Hello from Herald",
        media: tuple[Mapping[str, Any], ...] | list[Mapping[str, Any]] = (),
        key: str = "target-1",
    ) -> PublishRequest:
        """The request a (new) try gets: the checkpoint saved so far, and this store."""
        return PublishRequest(
            account=account,
            idempotency_key=key,
            text=text,
            media=tuple(media),
            checkpoint=dict(self.state),
            save_checkpoint=self.save,
        )


def graph_error(
    code: int,
    message: str,
    *,
    status: int = 400,
    type: str = "OAuthException",
    subcode: int | None = None,
    is_transient: bool = False,
    user_title: str | None = None,
    user_msg: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """A Graph error reply, shaped like the documented example."""
    error: dict[str, Any] = {"message": message, "type": type, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["is_transient"] = is_transient
    if user_title:
        error["error_user_title"] = user_title
    if user_msg:
        error["error_user_msg"] = user_msg
    error["fbtrace_id"] = "AbCdEfGhIjK"
    return Reply(status, {"error": error}, dict(headers or {}))


def insights_reply(object_id: str, values: dict[str, int], metrics: list[str]) -> Reply:
    """An /insights answer: one lifetime entry per metric asked for."""
    return Reply(
        200,
        {
            "data": [
                {
                    "name": name,
                    "period": "lifetime",
                    "values": [{"value": values.get(name, 0)}],
                    "title": name.replace("_", " ").title(),
                    "description": f"The {name} of the object.",
                    "id": f"{object_id}/insights/{name}/lifetime",
                }
                for name in metrics
            ]
        },
    )


def invalid_metric(name: str, valid: frozenset[str]) -> Reply:
    """Graph's refusal of a metric it does not have (or no longer has)."""
    return graph_error(
        100,
        f"(#100) metric[0] must be one of the following values: {', '.join(sorted(valid))}"
        if name
        else "(#100) The value must be a valid insights metric",
        type="OAuthException",
    )


def _fields(obj: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    wanted = ["id", *params.get("fields", "id").split(",")]
    return {k: obj[k] for k in wanted if obj.get(k) is not None}


def graph_time(epoch: float) -> str:
    """Graph's timestamp format: 2026-05-01T10:00:00+0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(epoch))


#: The app registered with the fakes (the Facebook app, or the Threads app).
APP_ID = "1234567890123456"
APP_SECRET = "fake-app-secret-5f2b9c"
#: The person who logs in unless a test names another.
DEFAULT_USER = "10160000000000001"
#: Lifetimes of what the fakes issue: codes, short-lived and long-lived tokens (seconds).
CODE_TTL = 600.0
SHORT_LIVED = 3600
LONG_LIVED = 5183944
#: Threads: a long-lived token can be refreshed once it is this old.
MIN_REFRESH_AGE = 86400.0


class FakeGraph(FakeServer):
    """What every Graph host does: version prefix, tokens, errors, usage headers, throttling."""

    def __init__(self, *, version: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.version = version
        self.clock = clock
        #: token → "valid" | "expired"; any other token is invalid.
        self.tokens: dict[str, str] = {"good-token": "valid", "expired-token": "expired"}
        self.app_usage = {"call_count": 3, "total_cputime": 1, "total_time": 2}
        #: X-Business-Use-Case-Usage, sent when set: {"<id>": [{"type", "call_count", ...}]}
        self.buc_usage: dict[str, list[dict[str, Any]]] | None = None
        self.drop_after: set[str] = set()
        self._throttle: list[Reply] = []
        self._ids = itertools.count(17_900_000_000_000_001)
        # A dropped connection is the point, not an error worth a traceback on stderr.
        self._httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        # -- login (Facebook Login, the Threads Authorization Window) --
        self.app_id, self.app_secret = APP_ID, APP_SECRET
        self.default_user = DEFAULT_USER
        #: People who can grant the app access: id → {"id", "name", "username", "pages"}; a Page
        #: is {"id", "name", "tasks", "instagram": {"id", "username"} | None}.
        self.users: dict[str, dict[str, Any]] = {
            DEFAULT_USER: {"id": DEFAULT_USER, "name": "Alice Example", "pages": []}
        }
        #: code → {"user_id", "redirect_uri", "expires_at", "used"}
        self.codes: dict[str, dict[str, Any]] = {}
        #: token → {"user_id", "kind" ("short" | "long" | "page"), "issued_at", "expires_at",
        #: "page_id"}; the token's state is in `tokens`.
        self.token_info: dict[str, dict[str, Any]] = {}
        #: Login calls answered: "code", "fb_exchange_token", "th_exchange_token",
        #: "th_refresh_token", "me_accounts".
        self.oauth_calls: Counter[str] = Counter()
        #: Entries per answer of /me/accounts (Graph pages its lists).
        self.accounts_page_size = 25
        #: Token errors quote the token, as Graph's "Malformed access token …" does.
        self.echo_tokens = False
        self._serial = itertools.count(1)

    def new_id(self) -> str:
        return str(next(self._ids))

    # -- throttling -------------------------------------------------------------------------

    def throttle(
        self,
        calls: int,
        *,
        code: int = 4,
        minutes: int | None = None,
        business_id: str = "1122334455",
        buc_type: str = "instagram",
    ) -> None:
        """Answer the next `calls` calls with a Graph throttling error and matching headers.

        Code 4/17 (platform limits) comes with X-App-Usage at 100 %; 32 and 80000-80014
        (Business Use Case limits) with X-Business-Use-Case-Usage whose
        `estimated_time_to_regain_access` is `minutes`.
        """
        messages = {
            4: "(#4) Application request limit reached",
            17: "(#17) User request limit reached",
            32: "(#32) Page request limit reached",
            613: "(#613) Calls to this api have exceeded the rate limit.",
        }
        headers = {
            "X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 40, "total_time": 45})
        }
        if code not in (4, 17):
            headers = {
                "X-App-Usage": json.dumps(self.app_usage),
                "X-Business-Use-Case-Usage": json.dumps(
                    {
                        business_id: [
                            {
                                "type": buc_type,
                                "call_count": 100,
                                "total_cputime": 30,
                                "total_time": 30,
                                "estimated_time_to_regain_access": minutes or 0,
                            }
                        ]
                    }
                ),
            }
        message = messages.get(code, "There have been too many calls. Wait a bit and try again.")
        reply = graph_error(code, message, is_transient=True, headers=headers)
        with self.lock:
            self._throttle.extend([reply] * calls)

    # -- dispatch ---------------------------------------------------------------------------

    def respond(self, request: Recorded) -> Reply:
        reply = self._respond(request)
        headers = {"X-App-Usage": json.dumps(self.app_usage), **reply.headers}
        if self.buc_usage is not None:
            headers.setdefault("X-Business-Use-Case-Usage", json.dumps(self.buc_usage))
        return Reply(reply.status, reply.body, headers)

    def _respond(self, request: Recorded) -> Reply:
        parts = request.path.strip("/").split("/")
        params = {k: v[-1] for k, v in request.query.items()}
        if request.method == "POST" and request.body:
            params.update({k: v[-1] for k, v in request.form().items()})
        if self.is_oauth_path(parts):
            # The login endpoints take the app's credentials, not a Bearer token.
            if self._throttle:
                return self._throttle.pop(0)
            return self.oauth_route(request.method, parts, params)
        if not parts or parts[0] != self.version:
            return graph_error(
                2500, "Unknown path components: /" + "/".join(parts[1:]), type="OAuthException"
            )
        denied = self._check_token(request)
        if denied is not None:
            return denied
        if self._throttle:
            return self._throttle.pop(0)
        me = self.me_route(request.method, parts[1:], params, self._bearer(request))
        if me is not None:
            return me
        reply = self.route(request.method, parts[1:], params)
        if reply is None:
            return self.unsupported(request.method, parts[1] if len(parts) > 1 else "")
        return reply

    @staticmethod
    def _bearer(request: Recorded) -> str:
        header = request.headers.get("authorization", "")
        return header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""

    def _check_token(self, request: Recorded) -> Reply | None:
        token = self._bearer(request)
        if not token:
            return graph_error(
                2500,
                "An active access token must be used to query information about the current user.",
            )
        return self.token_error(token)

    def token_state(self, token: str) -> str | None:
        """ "valid", "expired" (also by its expiry time), "app_removed", "password_changed"."""
        state = self.tokens.get(token)
        info = self.token_info.get(token)
        expires_at = info.get("expires_at") if info else None
        if state == "valid" and expires_at is not None and self.clock() >= expires_at:
            return "expired"
        return state

    def token_error(self, token: str) -> Reply | None:
        """Graph's answer to a call made with this token; None when the token is good."""
        state = self.token_state(token)
        if state == "valid":
            return None
        if state == "expired":
            return graph_error(
                190,
                "Error validating access token: Session has expired on Friday, 01-May-26 "
                "10:00:00 PDT. The current time is Sunday, 22-Nov-26 14:51:55 PST.",
                subcode=463,
            )
        if state == "app_removed":
            return graph_error(
                190,
                f"Error validating access token: The user has not authorized application "
                f"{self.app_id}.",
                subcode=458,
            )
        if state == "password_changed":
            return graph_error(
                190,
                "Error validating access token: The session has been invalidated because the "
                "user changed their password or Facebook has changed the session for security "
                "reasons.",
                subcode=460,
            )
        if self.echo_tokens:
            return graph_error(190, f"Malformed access token {token}")
        return graph_error(190, "Invalid OAuth access token - Cannot parse access token")

    # -- login: what the dialog grants, and the token endpoints -----------------------------

    def add_page(
        self,
        page_id: str,
        name: str,
        *,
        user_id: str | None = None,
        instagram: tuple[str, str] | None = None,
        tasks: tuple[str, ...] = ("CREATE_CONTENT", "MANAGE", "MODERATE"),
    ) -> None:
        """A Page the person manages; `instagram` = (IG user id, username) linked to it."""
        user = self.users[user_id or self.default_user]
        ig = {"id": instagram[0], "username": instagram[1]} if instagram else None
        user["pages"].append({"id": page_id, "name": name, "tasks": list(tasks), "instagram": ig})

    def authorize(self, *, redirect_uri: str, user_id: str | None = None) -> str:
        """The code the dialog sends back once the person grants access."""
        code = f"AQD{next(self._serial):04d}-code-{len(self.codes)}"
        self.codes[code] = {
            "user_id": user_id or self.default_user,
            "redirect_uri": redirect_uri,
            "expires_at": self.clock() + CODE_TTL,
            "used": False,
        }
        return code

    def issue_token(
        self,
        user_id: str,
        kind: str,
        *,
        lifetime: float | None,
        page_id: str | None = None,
    ) -> str:
        """A token in `tokens` ("valid"), with what the fake knows of it in `token_info`."""
        prefix = "TH" if self.version == "v1.0" else "EAAG"
        token = f"{prefix}{kind.upper()}{next(self._serial):05d}xyzzy"
        now = self.clock()
        self.tokens[token] = "valid"
        self.token_info[token] = {
            "user_id": user_id,
            "kind": kind,
            "issued_at": now,
            "expires_at": None if lifetime is None else now + lifetime,
            "page_id": page_id,
        }
        return token

    def deauthorize(self, user_id: str | None = None, *, reason: str = "app_removed") -> None:
        """Every token of the person stops working: "app_removed" | "password_changed"."""
        user_id = user_id or self.default_user
        for token, info in self.token_info.items():
            if info["user_id"] == user_id:
                self.tokens[token] = reason

    def check_app(self, params: dict[str, str], *, client_id: bool = True) -> Reply | None:
        """Graph's refusal of the app's credentials, if they are wrong."""
        if client_id and params.get("client_id") != self.app_id:
            return graph_error(101, "Error validating application. Invalid application ID.")
        if params.get("client_secret") != self.app_secret:
            return graph_error(1, "Error validating client secret.")
        return None

    def redeem_code(self, params: dict[str, str]) -> str | Reply:
        """The user id a code grants (the code is then spent), or Graph's refusal."""
        entry = self.codes.get(params.get("code", ""))
        if entry is None:
            return graph_error(100, "Invalid verification code format.")
        if entry["used"]:
            return graph_error(100, "This authorization code has been used.", subcode=36009)
        if self.clock() >= entry["expires_at"]:
            return graph_error(100, "This authorization code has expired.", subcode=36007)
        if params.get("redirect_uri") != entry["redirect_uri"]:
            return graph_error(
                100,
                "Error validating verification code. Please make sure your redirect_uri is "
                "identical to the one you used in the OAuth dialog request",
                subcode=36008,
            )
        entry["used"] = True
        self.oauth_calls["code"] += 1
        return str(entry["user_id"])

    def is_oauth_path(self, parts: list[str]) -> bool:
        return parts == [self.version, "oauth", "access_token"]

    def oauth_route(self, method: str, parts: list[str], params: dict[str, str]) -> Reply:
        """GET /{version}/oauth/access_token: the code exchange and fb_exchange_token."""
        refused = self.check_app(params)
        if refused is not None:
            return refused
        if params.get("grant_type") == "fb_exchange_token":
            token = params.get("fb_exchange_token", "")
            bad = self.token_error(token)
            if bad is not None:
                return bad
            self.oauth_calls["fb_exchange_token"] += 1
            user_id = self.token_info.get(token, {}).get("user_id", self.default_user)
            new = self.issue_token(user_id, "long", lifetime=LONG_LIVED)
            return Reply(
                200, {"access_token": new, "token_type": "bearer", "expires_in": LONG_LIVED}
            )
        if "code" not in params:
            return graph_error(100, "Missing authorization code")
        user_id = self.redeem_code(params)
        if isinstance(user_id, Reply):
            return user_id
        token = self.issue_token(user_id, "short", lifetime=SHORT_LIVED)
        return Reply(
            200, {"access_token": token, "token_type": "bearer", "expires_in": SHORT_LIVED}
        )

    def me_route(
        self, method: str, path: list[str], params: dict[str, str], token: str
    ) -> Reply | None:
        """GET /me (the token's User or Page) and GET /me/accounts (the User's Pages)."""
        if method != "GET" or not path or path[0] != "me" or len(path) > 2:
            return None
        info = self.token_info.get(token) or {"user_id": self.default_user, "kind": "long"}
        user = self.users[info["user_id"]]
        if path == ["me"]:
            if info.get("page_id"):
                page = next(p for p in user["pages"] if p["id"] == info["page_id"])
                return Reply(200, _fields({"id": page["id"], "name": page["name"]}, params))
            return Reply(200, _fields({"id": user["id"], "name": user.get("name")}, params))
        if path[1] != "accounts":
            return None
        if info["kind"] == "page":
            return graph_error(
                100, "(#100) Tried accessing nonexisting field (accounts) on node type (Page)"
            )
        self.oauth_calls["me_accounts"] += 1
        return self._accounts(user, info, params, token)

    def _accounts(
        self, user: dict[str, Any], info: dict[str, Any], params: dict[str, str], token: str
    ) -> Reply:
        pages = user["pages"]
        fields = params.get("fields", "id,name")
        after = params.get("after")
        start = int(base64.b64decode(after).decode()) if after else 0
        limit = min(int(params.get("limit", "25")), self.accounts_page_size)
        chunk = pages[start : start + limit]
        # A Page token from a long-lived User token does not expire; else it lasts an hour.
        lifetime = None if info["kind"] == "long" else SHORT_LIVED
        data = []
        for page in chunk:
            entry: dict[str, Any] = {"id": page["id"]}
            if "name" in fields:
                entry["name"] = page["name"]
            if "access_token" in fields and page["tasks"]:
                entry["access_token"] = self.issue_token(
                    user["id"], "page", lifetime=lifetime, page_id=page["id"]
                )
            if "instagram_business_account" in fields and page["instagram"]:
                entry["instagram_business_account"] = dict(page["instagram"])
            data.append(entry)
        end = start + len(chunk)
        paging: dict[str, Any] = {
            "cursors": {
                "before": base64.b64encode(str(start).encode()).decode(),
                "after": base64.b64encode(str(end).encode()).decode(),
            }
        }
        if end < len(pages):
            paging["next"] = (
                f"{self.url}/{self.version}/me/accounts?access_token={token}&limit={limit}"
                f"&after={paging['cursors']['after']}"
            )
        return Reply(200, {"data": data, "paging": paging})

    def route(self, method: str, path: list[str], params: dict[str, str]) -> Reply | None:
        raise NotImplementedError

    @staticmethod
    def unsupported(method: str, object_id: str) -> Reply:
        verb = "get" if method == "GET" else "post"
        return graph_error(
            100,
            f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation. Please read "
            "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
            type="GraphMethodException",
            subcode=33,
        )

    def maybe_drop(self, operation: str) -> None:
        """Lose the answer of this call (it has taken effect) if the test asked for it."""
        if operation in self.drop_after:
            self.drop_after.discard(operation)
            raise DropConnection(operation)


# -- Facebook Page --------------------------------------------------------------------------


class FakeFacebook(FakeGraph):
    """One Page: feed posts, published and unpublished photos, videos, duplicate detection."""

    def __init__(self, *, page_id: str = "1122334455", **kwargs: Any) -> None:
        super().__init__(version="v25.0", **kwargs)
        self.page_id = page_id
        self.posts: dict[str, dict[str, Any]] = {}  # post id → post (newest last)
        self.photos: dict[str, dict[str, Any]] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        #: Facebook refuses a post identical to the Page's previous one (code 506).
        self.reject_duplicates = True
        #: Reads of /published_posts that do not show the newest post yet.
        self.listing_lag = 0
        #: What people did with each post (reactions, comments, shares) and its views.
        self.engagement: dict[str, dict[str, int]] = {}
        #: The answer to /{post-id}/insights when the token may not read insights.
        self.insights_refused: Reply | None = None

    def route(self, method: str, path: list[str], params: dict[str, str]) -> Reply | None:
        if len(path) == 2 and path[0] == self.page_id:
            edge = path[1]
            if method == "POST" and edge == "feed":
                return self._feed(params)
            if method == "POST" and edge == "photos":
                return self._photo(params)
            if method == "POST" and edge == "videos":
                return self._video(params)
            if method == "GET" and edge == "published_posts":
                return self._published(params)
            return None
        if len(path) == 2 and path[1] == "insights" and path[0] in self.posts and method == "GET":
            return self._insights(path[0], params)
        if len(path) == 1 and method == "GET":
            object_id = path[0]
            if object_id in self.posts:
                post = self.posts[object_id]
                answer = {"id": object_id, "permalink_url": post["permalink_url"]}
                answer.update(self._counts(object_id, params.get("fields", "")))
                return Reply(200, answer)
            if object_id in self.videos:
                return Reply(
                    200,
                    {"id": object_id, "permalink_url": f"/{self.page_id}/videos/{object_id}/"},
                )
        return None

    def engage(self, post_id: str, **counts: int) -> None:
        """People engaged with the post: reactions, comments, shares, and its views
        (post_media_view)."""
        self.engagement.setdefault(post_id, {}).update(counts)

    def _counts(self, post_id: str, fields: str) -> dict[str, Any]:
        """The edges' summaries and `shares` as Graph gives them for these fields (`shares` is
        left out of a post nobody shared)."""
        counts = self.engagement.get(post_id, {})
        answer: dict[str, Any] = {}
        for field in fields.split(","):
            edge = field.split(".", 1)[0]
            if edge in ("reactions", "comments") and "summary(total_count)" in field:
                answer[edge] = {"data": [], "summary": {"total_count": counts.get(edge, 0)}}
            elif field == "shares" and counts.get("shares"):
                answer["shares"] = {"count": counts["shares"]}
        return answer

    def _insights(self, post_id: str, params: dict[str, str]) -> Reply:
        if self.insights_refused is not None:
            return self.insights_refused
        metrics = [m for m in params.get("metric", "").split(",") if m]
        valid = frozenset({"post_media_view", "post_total_media_view_unique", "post_clicks"})
        for name in metrics:
            if name not in valid:  # post_impressions went on November 15, 2025
                return invalid_metric("", valid)
        if not metrics:
            return graph_error(
                100,
                "No metric was specified to be fetched. Please specify one or more metrics to "
                "be fetched and try again.",
                subcode=1504028,
            )
        counts = self.engagement.get(post_id, {})
        return insights_reply(post_id, {"post_media_view": counts.get("views", 0)}, metrics)

    def _new_post(self, message: str | None, **extra: Any) -> dict[str, Any]:
        post_id = f"{self.page_id}_{self.new_id()}"
        post = {
            "id": post_id,
            "message": message,
            "created_time": graph_time(self.clock()),
            "permalink_url": f"https://www.facebook.com/{self.page_id}/posts/"
            f"{post_id.split('_', 1)[1]}",
            **extra,
        }
        self.posts[post_id] = post
        return post

    def _duplicate(self, message: str | None) -> Reply | None:
        if not self.reject_duplicates or not message or not self.posts:
            return None
        last = list(self.posts.values())[-1]
        if last.get("message") == message:
            return graph_error(506, "(#506) Duplicate status message")
        return None

    def _feed(self, params: dict[str, str]) -> Reply:
        message = params.get("message")
        if message is not None and len(message) > 63206:
            return graph_error(100, "(#100) The message is too long")
        attached: list[str] = []
        for key in sorted(k for k in params if re.fullmatch(r"attached_media\[\d+\]", k)):
            try:
                media_fbid = str(json.loads(params[key])["media_fbid"])
            except (ValueError, KeyError, TypeError):
                return graph_error(100, f"(#100) Param {key} must be a JSON object")
            photo = self.photos.get(media_fbid)
            if photo is None or photo["published"]:
                return graph_error(
                    100, f"(#100) Param attached_media[{len(attached)}] has an invalid media id"
                )
            attached.append(media_fbid)
        if not message and not params.get("link") and not attached:
            return graph_error(100, "(#100) Either message or link or attached_media must be set")
        duplicate = self._duplicate(message)
        if duplicate is not None:
            return duplicate
        post = self._new_post(message, link=params.get("link"), attached_media=attached)
        for photo_id in attached:
            self.photos[photo_id]["post_id"] = post["id"]
        self.maybe_drop("feed")
        return Reply(200, {"id": post["id"]})

    def _photo(self, params: dict[str, str]) -> Reply:
        url = params.get("url", "")
        if not url.startswith(("http://", "https://")):
            return graph_error(324, "(#324) Requires upload file", subcode=2069019)
        photo_id = self.new_id()
        published = params.get("published", "true") != "false"
        self.photos[photo_id] = {"id": photo_id, "url": url, "published": published}
        if not published:
            return Reply(200, {"id": photo_id})
        duplicate = self._duplicate(params.get("message"))
        if duplicate is not None:
            return duplicate
        post = self._new_post(params.get("message"), photo=photo_id)
        self.photos[photo_id]["post_id"] = post["id"]
        self.maybe_drop("photos")
        return Reply(200, {"id": photo_id, "post_id": post["id"]})

    def _video(self, params: dict[str, str]) -> Reply:
        url = params.get("file_url", "")
        if not url.startswith(("http://", "https://")):
            return graph_error(100, "(#100) Param file_url must be a valid URL")
        video_id = self.new_id()
        post = self._new_post(params.get("description"), video=video_id)
        self.videos[video_id] = {"id": video_id, "url": url, "post_id": post["id"]}
        self.maybe_drop("videos")
        return Reply(200, {"id": video_id})

    def _published(self, params: dict[str, str]) -> Reply:
        limit = int(params.get("limit", "25"))
        fields = params.get("fields", "id,message,created_time").split(",")
        newest = list(reversed(self.posts.values()))
        if self.listing_lag > 0:
            self.listing_lag -= 1
            newest = newest[1:]
        data = [{k: post[k] for k in fields if post.get(k) is not None} for post in newest[:limit]]
        return Reply(200, {"data": data, "paging": {"cursors": {"before": "b", "after": "a"}}})


# -- containers: Instagram and Threads ------------------------------------------------------


class FakeContainers(FakeGraph):
    """Containers, their states, the publish call, the quota and the account's posts."""

    create_edge: str
    publish_edge: str
    limit_edge: str
    list_edge: str
    status_field: str
    detail_field: str
    text_field: str
    owner_id: str

    def __init__(self, *, version: str, quota_total: int, **kwargs: Any) -> None:
        super().__init__(version=version, **kwargs)
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}  # published posts, oldest first
        #: Status reads that answer IN_PROGRESS before a new container is FINISHED.
        self.processing_polls = 0
        #: When set, containers end in ERROR with this detail instead of FINISHED.
        self.processing_error: str | None = None
        self.quota_total = quota_total
        #: Publishes counted in the window besides the ones this fake made.
        self.quota_used_elsewhere = 0
        #: Status reads of a just-published container that still answer FINISHED.
        self.status_lag = 0
        #: Insight values per media id (see `engage`).
        self.insights: dict[str, dict[str, int]] = {}
        #: The answer to /{media-id}/insights when it is refused (a permission, an album).
        self.insights_refused: Reply | None = None

    #: The media insights metrics the platform has.
    insight_metrics: frozenset[str] = frozenset()

    # -- what the subclasses answer differently ------------------------------------------

    def check_container(self, params: dict[str, str]) -> Reply | None:
        raise NotImplementedError

    def status_detail(self, container: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def permalink(self, media_id: str) -> str:
        raise NotImplementedError

    def not_ready(self, container_id: str) -> Reply:
        raise NotImplementedError

    def not_found(self, container_id: str) -> Reply:
        raise NotImplementedError

    def over_quota(self) -> Reply:
        raise NotImplementedError

    def already_published(self, container_id: str) -> Reply:
        # Not documented; a plausible Graph refusal (see the adapters' "unclear" notes).
        return graph_error(
            100,
            "Invalid parameter",
            user_title="Media already published",
            user_msg=f"The media container {container_id} has already been published.",
        )

    def expired(self, container_id: str) -> Reply:
        return graph_error(
            -2,
            "The media you are trying to access has expired. Please try to upload again.",
            subcode=2207020,
        )

    # -- routes ---------------------------------------------------------------------------

    def owner(self, name: str) -> str | None:
        return self.owner_id if name == self.owner_id else None

    def route(self, method: str, path: list[str], params: dict[str, str]) -> Reply | None:
        if len(path) == 2 and self.owner(path[0]):
            edge = path[1]
            if method == "POST" and edge == self.create_edge:
                return self._create(params)
            if method == "POST" and edge == self.publish_edge:
                return self._publish(params)
            if method == "GET" and edge == self.limit_edge:
                return self._limit(params)
            if method == "GET" and edge == self.list_edge:
                return self._list(params)
            return None
        if len(path) == 2 and path[1] == "insights" and path[0] in self.media and method == "GET":
            return self._media_insights(path[0], params)
        if len(path) == 1 and method == "GET":
            if path[0] in self.containers:
                return self._status(path[0])
            if path[0] in self.media:
                media = self.media[path[0]]
                fields = params.get("fields", "id").split(",")
                return Reply(200, {k: media[k] for k in ["id", *fields] if k in media})
        return None

    def engage(self, media_id: str, fields: dict[str, int] | None = None, **insights: int) -> None:
        """The media's own counts (`fields`, e.g. like_count) and its insight values."""
        self.media[media_id].update(fields or {})
        self.insights.setdefault(media_id, {}).update(insights)

    def _media_insights(self, media_id: str, params: dict[str, str]) -> Reply:
        if self.insights_refused is not None:
            return self.insights_refused
        metrics = [m for m in params.get("metric", "").split(",") if m]
        for name in metrics:
            if name not in self.insight_metrics:
                return invalid_metric(name, self.insight_metrics)
        return insights_reply(media_id, self.insights.get(media_id, {}), metrics)

    def _create(self, params: dict[str, str]) -> Reply:
        refused = self.check_container(params)
        if refused is not None:
            return refused
        children = [c for c in params.get("children", "").split(",") if c]
        for child in children:
            item = self.containers.get(child)
            if item is None or item["params"].get("is_carousel_item") != "true":
                return graph_error(100, f"Param children has an invalid container id {child}")
            if item["state"] != FINISHED:
                return self.not_ready(child)
        container_id = self.new_id()
        polls = self.processing_polls
        self.containers[container_id] = {
            "id": container_id,
            "params": dict(params),
            "children": children,
            "state": IN_PROGRESS if polls > 0 or self.processing_error else FINISHED,
            "polls_left": polls,
            "media_id": None,
        }
        return Reply(200, {"id": container_id})

    def _status(self, container_id: str) -> Reply:
        container = self.containers[container_id]
        answer = container["state"]
        if answer == PUBLISHED and self.status_lag > 0:
            self.status_lag -= 1
            answer = FINISHED
        if answer == IN_PROGRESS:
            container["polls_left"] -= 1
            if container["polls_left"] <= 0:
                container["state"] = ERROR if self.processing_error else FINISHED
        body: dict[str, Any] = {"id": container_id, self.status_field: answer}
        detail = self.status_detail({**container, "state": answer})
        if detail is not None:
            body[self.detail_field] = detail
        return Reply(200, body)

    def published_in_window(self) -> int:
        since = self.clock() - 86400
        return self.quota_used_elsewhere + sum(
            1 for m in self.media.values() if m["published_at"] >= since
        )

    def _publish(self, params: dict[str, str]) -> Reply:
        container_id = params.get("creation_id", "")
        container = self.containers.get(container_id)
        if container is None or container["params"].get("is_carousel_item") == "true":
            return self.not_found(container_id)
        state = container["state"]
        if state == PUBLISHED:
            return self.already_published(container_id)
        if state == EXPIRED:
            return self.expired(container_id)
        if state in (IN_PROGRESS, ERROR):
            return self.not_ready(container_id)
        if self.published_in_window() >= self.quota_total:
            return self.over_quota()
        media_id = self.new_id()
        now = self.clock()
        self.media[media_id] = {
            "id": media_id,
            self.text_field: container["params"].get(self.text_field),
            "timestamp": graph_time(now),
            "permalink": self.permalink(media_id),
            "media_type": container["params"].get("media_type", "IMAGE"),
            "children": container["children"],
            "container": container_id,
            "published_at": now,
        }
        container["state"] = PUBLISHED
        container["media_id"] = media_id
        self.maybe_drop("publish")
        return Reply(200, {"id": media_id})

    def _limit(self, params: dict[str, str]) -> Reply:
        entry: dict[str, Any] = {"quota_usage": self.published_in_window()}
        if "config" in params.get("fields", ""):
            entry["config"] = {"quota_total": self.quota_total, "quota_duration": 86400}
        return Reply(200, {"data": [entry]})

    def _list(self, params: dict[str, str]) -> Reply:
        limit = int(params.get("limit", "25"))
        fields = params.get("fields", "id").split(",")
        newest = list(reversed(self.media.values()))[:limit]
        data = [{k: m[k] for k in ["id", *fields] if m.get(k) is not None} for m in newest]
        return Reply(200, {"data": data, "paging": {"cursors": {"before": "b", "after": "a"}}})

    # -- for tests ------------------------------------------------------------------------

    def expire(self, container_id: str) -> None:
        """The container was not published within 24 hours."""
        self.containers[container_id]["state"] = EXPIRED

    def top_containers(self) -> list[dict[str, Any]]:
        return [
            c for c in self.containers.values() if c["params"].get("is_carousel_item") != "true"
        ]


class FakeInstagram(FakeContainers):
    """An Instagram professional account on graph.facebook.com."""

    create_edge = "media"
    publish_edge = "media_publish"
    limit_edge = "content_publishing_limit"
    list_edge = "media"
    status_field = "status_code"
    detail_field = "status"
    text_field = "caption"
    # The IG Media Insights reference's metrics; `impressions` went on April 21, 2025.
    insight_metrics = frozenset(
        {"views", "reach", "saved", "shares", "likes", "comments", "total_interactions"}
    )

    def __init__(self, *, ig_user_id: str = "17841400000000001", **kwargs: Any) -> None:
        super().__init__(version="v25.0", quota_total=100, **kwargs)
        self.owner_id = ig_user_id

    def check_container(self, params: dict[str, str]) -> Reply | None:
        caption = params.get("caption", "")
        if len(caption) > 2200:
            return graph_error(
                100, "The caption is too long", subcode=2207010, user_msg="Caption too long"
            )
        media_type = params.get("media_type", "IMAGE")
        if media_type == "CAROUSEL":
            children = [c for c in params.get("children", "").split(",") if c]
            if not 2 <= len(children) <= 10:
                return graph_error(100, "Param children must be an array of 2 to 10 ids")
            return None
        if media_type in ("REELS", "VIDEO"):
            if not params.get("video_url"):
                return graph_error(100, "The parameter video_url is required")
            return None
        if media_type == "IMAGE" and not params.get("image_url"):
            return graph_error(100, "The parameter image_url is required")
        if not params.get("image_url", "").lower().split("?")[0].endswith((".jpg", ".jpeg")):
            return graph_error(
                9004,
                "Only photo or video can be accepted as media type.",
                subcode=2207052,
                user_title="Media download has failed.",
                user_msg="The media could not be fetched from this URI.",
            )
        return None

    def status_detail(self, container: dict[str, Any]) -> str | None:
        return {
            IN_PROGRESS: "In Progress: Media is still being processed.",
            FINISHED: "Finished: Media has been uploaded and it is complete.",
            PUBLISHED: "Published: Media has been successfully published.",
            EXPIRED: "Expired: Media was not published within 24 hours.",
            ERROR: f"Error: {self.processing_error}",
        }.get(container["state"])

    def permalink(self, media_id: str) -> str:
        return f"https://www.instagram.com/p/C{media_id[-8:]}/"

    def not_ready(self, container_id: str) -> Reply:
        return graph_error(
            9007,
            "Media ID is not available",
            subcode=2207027,
            user_title="Media not ready for publishing",
            user_msg="The media is not ready for publishing, please wait for a moment",
        )

    def not_found(self, container_id: str) -> Reply:
        return graph_error(
            24,
            "The requested resource does not exist",
            subcode=2207006,
            user_msg=f"The media with id {container_id} cannot be found",
        )

    def over_quota(self) -> Reply:
        return graph_error(
            9,
            "Application request limit reached",
            subcode=2207042,
            user_title="Publishing limit reached",
            user_msg="You reached maximum number of posts that is allowed to be published by "
            "Content Publish API.",
        )


class FakeThreads(FakeContainers):
    """A Threads profile on graph.threads.net; "me" names the token's own profile."""

    create_edge = "threads"
    publish_edge = "threads_publish"
    limit_edge = "threads_publishing_limit"
    list_edge = "threads"
    status_field = "status"
    detail_field = "error_message"
    text_field = "text"
    insight_metrics = frozenset({"views", "likes", "replies", "reposts", "quotes", "shares"})

    def __init__(self, *, threads_user_id: str = "8800000000000001", **kwargs: Any) -> None:
        super().__init__(version="v1.0", quota_total=250, **kwargs)
        self.owner_id = threads_user_id
        self.username = "alice"
        # The one person who logs in is the profile's owner.
        self.default_user = threads_user_id
        self.users = {threads_user_id: {"id": threads_user_id, "name": "Alice", "pages": []}}

    def owner(self, name: str) -> str | None:
        return self.owner_id if name in (self.owner_id, "me") else None

    # -- login (https://developers.facebook.com/docs/threads/get-started) -----------------

    def is_oauth_path(self, parts: list[str]) -> bool:
        return parts in (["oauth", "access_token"], ["access_token"], ["refresh_access_token"])

    def oauth_route(self, method: str, parts: list[str], params: dict[str, str]) -> Reply:
        """POST /oauth/access_token, GET /access_token, GET /refresh_access_token (no version).

        What Threads answers for a refused refresh (a token under 24 hours old) is not
        documented; this fake answers a Graph error, code 100, that is not a token error.
        """
        if parts == ["oauth", "access_token"]:
            if method != "POST":
                return graph_error(100, "Unsupported get request.", type="GraphMethodException")
            refused = self.check_app(params)
            if refused is not None:
                return refused
            if params.get("grant_type") != "authorization_code":
                return graph_error(100, f"Invalid grant_type: '{params.get('grant_type')}'")
            user_id = self.redeem_code(params)
            if isinstance(user_id, Reply):
                return user_id
            token = self.issue_token(user_id, "short", lifetime=SHORT_LIVED)
            return Reply(200, {"access_token": token, "user_id": int(user_id)})
        token = params.get("access_token", "")
        if parts == ["access_token"]:
            if params.get("grant_type") != "th_exchange_token":
                return graph_error(100, f"Invalid grant_type: '{params.get('grant_type')}'")
            refused = self.check_app(params, client_id=False)
            if refused is not None:
                return refused
            bad = self.token_error(token)
            if bad is not None:
                return bad
            self.oauth_calls["th_exchange_token"] += 1
            user_id = self.token_info.get(token, {}).get("user_id", self.default_user)
            new = self.issue_token(user_id, "long", lifetime=LONG_LIVED)
            return Reply(
                200, {"access_token": new, "token_type": "bearer", "expires_in": LONG_LIVED}
            )
        if params.get("grant_type") != "th_refresh_token":
            return graph_error(100, f"Invalid grant_type: '{params.get('grant_type')}'")
        bad = self.token_error(token)
        if bad is not None:
            return bad
        info = self.token_info.get(token)
        if info is None or info["kind"] != "long":
            return graph_error(100, "Only long-lived access tokens can be refreshed")
        if self.clock() - info["issued_at"] < MIN_REFRESH_AGE:
            return graph_error(
                100,
                "Invalid parameter",
                user_msg="The access token must be at least 24 hours old to be refreshed.",
            )
        self.oauth_calls["th_refresh_token"] += 1
        new = self.issue_token(info["user_id"], "long", lifetime=LONG_LIVED)
        return Reply(200, {"access_token": new, "token_type": "bearer", "expires_in": LONG_LIVED})

    def me_route(
        self, method: str, path: list[str], params: dict[str, str], token: str
    ) -> Reply | None:
        """GET /me: the token's profile (the publishing edges under /me are `route`'s)."""
        if method != "GET" or path != ["me"]:
            return None
        profile = {"id": self.owner_id, "username": self.username, "name": "Alice"}
        return Reply(200, _fields(profile, params))

    def check_container(self, params: dict[str, str]) -> Reply | None:
        text = params.get("text", "")
        media_type = params.get("media_type")
        if media_type not in ("TEXT", "IMAGE", "VIDEO", "CAROUSEL"):
            return graph_error(
                100,
                "Param media_type must be one of {TEXT, IMAGE, VIDEO, CAROUSEL}",
                type="THApiException",
            )
        if len(text) > 500:
            return graph_error(
                100, "Param text must be at most 500 characters long.", type="THApiException"
            )
        urls = {u.rstrip(".,;:!?)") for u in re.findall(r"(?:https?://|www\.)\S+", text)}
        if len(urls) > 5:
            return graph_error(
                100,
                "THREADS_API__LINK_LIMIT_EXCEEDED",
                type="THApiException",
                user_msg="Posts can contain at most 5 links.",
            )
        reply_control = params.get("reply_control")
        if reply_control is not None and reply_control not in (
            "everyone",
            "accounts_you_follow",
            "mentioned_only",
            "parent_post_author_only",
            "followers_only",
        ):
            return graph_error(100, "Param reply_control is not valid", type="THApiException")
        if media_type == "TEXT" and not text:
            return graph_error(100, "Param text is required for TEXT posts", type="THApiException")
        if media_type == "IMAGE" and not params.get("image_url"):
            return graph_error(100, "Param image_url is required", type="THApiException")
        if media_type == "VIDEO" and not params.get("video_url"):
            return graph_error(100, "Param video_url is required", type="THApiException")
        if media_type == "CAROUSEL":
            children = [c for c in params.get("children", "").split(",") if c]
            if not 2 <= len(children) <= 20:
                return graph_error(
                    100, "Param children must have 2 to 20 items", type="THApiException"
                )
        return None

    def status_detail(self, container: dict[str, Any]) -> str | None:
        return self.processing_error if container["state"] == ERROR else None

    def permalink(self, media_id: str) -> str:
        return f"https://www.threads.com/@alice/post/D{media_id[-8:]}"

    def not_ready(self, container_id: str) -> Reply:
        # What Threads answers when a container is published before it is registered.
        return self.not_found(container_id)

    def not_found(self, container_id: str) -> Reply:
        return graph_error(
            24,
            "The requested resource does not exist",
            subcode=4279009,
            user_title="Media Not Found",
            user_msg=f"The media with id {container_id} cannot be found.",
        )

    def over_quota(self) -> Reply:
        # Not documented; the adapter reads threads_publishing_limit before publishing.
        return graph_error(4, "Application request limit reached", is_transient=True)
