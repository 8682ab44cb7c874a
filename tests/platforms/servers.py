"""Local fake platform servers that answer as the documentation says the real ones do.

Each runs a stdlib ThreadingHTTPServer on 127.0.0.1 (port 0) in a thread, records every request
(`.requests`), and can be told to fail its next calls (`.fail_next`).
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)


@dataclass
class Reply:
    """What a handler answers."""

    status: int
    body: Any = None  # dict/list → JSON; bytes → as is; None → empty
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Failure:
    reply: Reply
    path: str | None  # only calls whose path starts with this fail; None: any call


class FakeServer:
    """A threaded HTTP server dispatching to `handle`; subclasses implement the platform."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._failures: list[_Failure] = []
        self.lock = threading.RLock()
        #: Requests to this path have their reply held (after the server acted on them) until
        #: `release` is set: the window in which a crashed client never hears the answer.
        self.hold_path: str | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                request = Recorded(
                    method=self.command,
                    path=url.path,
                    query=parse_qs(url.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                reply = server._dispatch(request)
                server._hold(request)
                payload = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else b""
                    if reply.body is None
                    else json.dumps(reply.body).encode()
                )
                self.send_response(reply.status)
                if not isinstance(reply.body, bytes) and reply.body is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll interval makes shutdown (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail_next(
        self,
        times: int,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """Answer the next `times` calls (to `path`, if given) with this reply instead."""
        with self.lock:
            for _ in range(times):
                self._failures.append(_Failure(Reply(status, body, dict(headers or {})), path))

    def calls(self, path: str, method: str | None = None) -> list[Recorded]:
        """The recorded requests to a path (and method)."""
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]

    def _dispatch(self, request: Recorded) -> Reply:
        with self.lock:
            self.requests.append(request)
            for failure in self._failures:
                if failure.path is None or request.path.startswith(failure.path):
                    self._failures.remove(failure)
                    return failure.reply
            return self.respond(request)

    def respond(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def _hold(self, request: Recorded) -> None:
        if self.hold_path is not None and request.path == self.hold_path:
            self.held.set()
            self.release.wait(timeout=120)


@contextmanager
def running(server: FakeServer) -> Iterator[FakeServer]:
    """The server, started for the duration of the block."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- Mastodon -------------------------------------------------------------------------------


class Receiver(FakeServer):
    """A tenant's webhook endpoint: 204 to every POST (or what `fail_next` says)."""

    def respond(self, request: Recorded) -> Reply:
        return Reply(204)


class FakeMastodon(FakeServer):
    """Statuses with Idempotency-Key replay, async media processing, and Mastodon's errors."""

    def __init__(self, *, token: str = "good-token", max_characters: int = 500) -> None:
        super().__init__()
        self.token = token
        self.max_characters = max_characters
        self.account = {"id": "109", "username": "alice", "acct": "alice"}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[tuple[str, str], str] = {}
        self.media: dict[str, dict[str, Any]] = {}
        #: GET /api/v1/media/:id answers 206 this many times before the media is ready.
        self.processing_polls = 0
        #: Tokens revoked (by the user, or an admin): 401 "The access token was revoked".
        self.revoked: set[str] = set()
        #: The account may not sign in (suspended, unconfirmed): 403.
        self.login_disabled = False
        #: A server of Mastodon 4.5 or later counts quotes (Status.quotes_count); older ones
        #: leave the attribute out.
        self.counts_quotes = True
        self._ids = itertools.count(1000)

    def revoke(self, token: str | None = None) -> None:
        """Revoke the token (the account's, by default), as Settings → Authorized apps does."""
        self.revoked.add(token or self.token)

    def respond(self, request: Recorded) -> Reply:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer in self.revoked:
            return Reply(401, {"error": "The access token was revoked"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"error": "The access token is invalid"})
        if self.login_disabled:
            return Reply(403, {"error": "Your login is currently disabled"})
        path, method = request.path, request.method
        if method == "POST" and path == "/api/v1/statuses":
            return self._create_status(request)
        if method == "POST" and path == "/api/v2/media":
            return self._upload(request)
        if method == "GET" and path.startswith("/api/v1/media/"):
            return self._get_media(path.rsplit("/", 1)[-1])
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            return Reply(200, self.account)
        if method == "GET" and path.startswith("/api/v1/statuses/"):
            status = self.statuses.get(path.rsplit("/", 1)[-1])
            if status is None:
                return Reply(404, {"error": "Record not found"})
            return Reply(200, self._shown(status))
        if method == "GET" and path == f"/api/v1/accounts/{self.account['id']}/statuses":
            limit = int(request.query.get("limit", ["20"])[0])
            newest = sorted(self.statuses.values(), key=lambda s: int(s["id"]), reverse=True)
            return Reply(200, newest[:limit])
        return Reply(404, {"error": "Record not found"})

    def _create_status(self, request: Recorded) -> Reply:
        form = request.form()
        key = request.headers.get("idempotency-key")
        if key and (self.account["id"], key) in self.idempotency:
            return Reply(200, self.statuses[self.idempotency[(self.account["id"], key)]])
        text = form.get("status", [""])[0]
        media_ids = form.get("media_ids[]", [])
        if not text.strip() and not media_ids:
            return Reply(422, {"error": "Validation failed: Text can't be blank"})
        if len(text) > self.max_characters:
            return Reply(
                422,
                {
                    "error": "Validation failed: Text character limit of "
                    f"{self.max_characters} exceeded"
                },
            )
        if len(media_ids) > 4:
            return Reply(422, {"error": "Validation failed: Cannot attach more than 4 files"})
        for media_id in media_ids:
            if media_id not in self.media:
                return Reply(422, {"error": "Validation failed: Media attachment not found"})
        status_id = str(next(self._ids))
        paragraphs = "".join(
            f"<p>{html.escape(p).replace(chr(10), '<br />')}</p>" for p in re.split(r"\n{2,}", text)
        )
        status = {
            "id": status_id,
            "url": f"{self.url}/@alice/{status_id}",
            "uri": f"{self.url}/users/alice/statuses/{status_id}",
            "content": paragraphs,
            "spoiler_text": form.get("spoiler_text", [""])[0],
            "visibility": form.get("visibility", ["public"])[0],
            "language": form.get("language", [None])[0],
            "media_attachments": [self.media[m] for m in media_ids],
            "account": self.account,
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "quotes_count": 0,
        }
        self.statuses[status_id] = status
        if key:
            # Mastodon stores the key after creating the status, for 3,600 s.
            self.idempotency[(self.account["id"], key)] = status_id
        return Reply(200, self._shown(status))

    def _shown(self, status: dict[str, Any]) -> dict[str, Any]:
        if self.counts_quotes:
            return status
        return {k: v for k, v in status.items() if k != "quotes_count"}

    def engage(
        self,
        status_id: str,
        *,
        favourites: int = 0,
        reblogs: int = 0,
        replies: int = 0,
        quotes: int = 0,
    ) -> None:
        """People favourited, boosted, replied to and quoted the status this often."""
        self.statuses[status_id].update(
            favourites_count=favourites,
            reblogs_count=reblogs,
            replies_count=replies,
            quotes_count=quotes,
        )

    def _upload(self, request: Recorded) -> Reply:
        if b'name="file"' not in request.body:
            return Reply(422, {"error": "Validation failed: File content type is invalid"})
        media_id = str(next(self._ids))
        ready = self.processing_polls == 0
        self.media[media_id] = {
            "id": media_id,
            "type": "image",
            "url": f"{self.url}/media/{media_id}.png" if ready else None,
            "preview_url": f"{self.url}/media/{media_id}-small.png",
            "polls_left": self.processing_polls,
        }
        return Reply(200 if ready else 202, self._public(self.media[media_id]))

    def _get_media(self, media_id: str) -> Reply:
        media = self.media.get(media_id)
        if media is None:
            return Reply(404, {"error": "Record not found"})
        if media["polls_left"] > 0:
            media["polls_left"] -= 1
            return Reply(206, None)
        media["url"] = f"{self.url}/media/{media_id}.png"
        return Reply(200, self._public(media))

    @staticmethod
    def _public(media: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in media.items() if k != "polls_left"}


# -- Bluesky PDS ----------------------------------------------------------------------------


class FakePDS(FakeServer):
    """Sessions, blobs and post records as the reference PDS answers them.

    A createRecord on an rkey that already exists gets what the reference PDS gives today,
    HTTP 500 InternalServerError (bluesky-social/atproto#3718); `duplicate_reply` changes it.
    """

    def __init__(
        self, *, handle: str = "alice.test", did: str = "did:plc:alice", password: str = "app-pw"
    ) -> None:
        super().__init__()
        self.handle, self.did, self.password = handle, did, password
        self.handles = {handle: did, "bob.test": "did:plc:bob"}
        self.access: dict[str, bool] = {}  # token → expired?
        self.refresh: set[str] = set()
        self.records: dict[str, dict[str, Any]] = {}  # rkey → {"uri", "cid", "value"}
        self.blobs: dict[str, bytes] = {}
        self.duplicate_reply = Reply(
            500, {"error": "InternalServerError", "message": "Internal Server Error"}
        )
        self._ids = itertools.count(1)
        #: Issue JWT-shaped tokens (unsigned) whose access token's `exp` is clock() + access_ttl.
        self.jwt = False
        self.access_ttl = 7200.0
        self.clock = time.time
        #: The account was taken down: createSession and refreshSession answer AccountTakedown.
        self.takedown = False
        #: Refresh tokens revoked with their app password: 400 "Token has been revoked".
        self.revoked_refresh: set[str] = set()
        #: What the AppView counts per post URI (see `engage`).
        self.counts: dict[str, dict[str, int]] = {}

    def revoke_app_password(self) -> None:
        """The person revoked the app password: its sessions end and it no longer signs in."""
        self.password = None  # type: ignore[assignment]
        self.revoked_refresh |= self.refresh
        self.refresh.clear()

    def expire_refresh_tokens(self) -> None:
        """Every refresh token has expired (they last 90 days on the PDS)."""
        self.refresh.clear()

    def _jwt(self, claims: dict[str, Any]) -> str:
        def part(value: dict[str, Any]) -> str:
            raw = json.dumps(value, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return f"{part({'typ': 'at+jwt', 'alg': 'ES256K'})}.{part(claims)}.c2lnbmF0dXJl"

    def issue_tokens(self, *, expired: bool = False) -> dict[str, str]:
        """A session as createSession gives it; `expired` makes its access token expired."""
        n = next(self._ids)
        access, refresh = f"access-{n}", f"refresh-{n}"
        if self.jwt:
            now = int(self.clock())
            access = self._jwt(
                {
                    "scope": "com.atproto.appPass",
                    "sub": self.did,
                    "iat": now,
                    "exp": now + int(self.access_ttl),
                    "jti": f"a{n}",
                }
            )
            refresh = self._jwt(
                {
                    "scope": "com.atproto.refresh",
                    "sub": self.did,
                    "exp": now + 90 * 86400,
                    "jti": f"r{n}",
                }
            )
        self.access[access] = expired
        self.refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "did": self.did}

    def expire_all(self) -> None:
        for token in self.access:
            self.access[token] = True

    def respond(self, request: Recorded) -> Reply:
        method = request.path.removeprefix("/xrpc/")
        if method == "com.atproto.server.createSession":
            body = request.json()
            if self.takedown:
                return Reply(
                    401, {"error": "AccountTakedown", "message": "Account has been taken down"}
                )
            if body.get("identifier") in (self.handle, self.did) and (
                body.get("password") == self.password
            ):
                return Reply(200, {**self.issue_tokens(), "handle": self.handle})
            return Reply(
                401,
                {"error": "AuthenticationRequired", "message": "Invalid identifier or password"},
            )
        if method == "com.atproto.server.refreshSession":
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token in self.revoked_refresh:
                return Reply(400, {"error": "ExpiredToken", "message": "Token has been revoked"})
            if self.takedown:
                return Reply(
                    400, {"error": "AccountTakedown", "message": "Account has been taken down"}
                )
            if token not in self.refresh:
                return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"})
            self.refresh.discard(token)  # refresh tokens are single-use
            return Reply(200, {**self.issue_tokens(), "handle": self.handle})
        if method == "com.atproto.identity.resolveHandle":
            handle = request.query.get("handle", [""])[0]
            if handle in self.handles:
                return Reply(200, {"did": self.handles[handle]})
            return Reply(400, {"error": "InvalidRequest", "message": "Unable to resolve handle"})
        if method == "com.atproto.repo.getRecord":
            return self._get_record(request)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        if method == "com.atproto.repo.uploadBlob":
            cid = f"bafkrei{len(self.blobs):04d}"
            self.blobs[cid] = request.body
            return Reply(
                200,
                {
                    "blob": {
                        "$type": "blob",
                        "ref": {"$link": cid},
                        "mimeType": request.headers.get("content-type", "*/*"),
                        "size": len(request.body),
                    }
                },
            )
        if method == "com.atproto.repo.createRecord":
            return self._create_record(request)
        if method == "app.bsky.feed.getPosts":
            return self._get_posts(request)
        return Reply(501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"})

    def _check_auth(self, request: Recorded) -> Reply | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return Reply(401, {"error": "AuthMissing", "message": "Authentication Required"})
        token = header.removeprefix("Bearer ")
        if token not in self.access:
            return Reply(400, {"error": "InvalidToken", "message": "Token could not be verified"})
        if self.access[token]:
            return Reply(400, {"error": "ExpiredToken", "message": "Token has expired"})
        return None

    def _create_record(self, request: Recorded) -> Reply:
        body = request.json()
        if body.get("repo") not in (self.did, self.handle):
            return Reply(400, {"error": "InvalidRequest", "message": "Could not find repo"})
        rkey = body.get("rkey")
        if not isinstance(rkey, str) or not re.fullmatch(r"[A-Za-z0-9._:~-]{1,512}", rkey):
            return Reply(400, {"error": "InvalidRequest", "message": "Input/rkey must be a valid"})
        record = body.get("record") or {}
        text = record.get("text", "")
        if len(text) > 300:
            return Reply(
                400,
                {
                    "error": "InvalidRequest",
                    "message": "Invalid app.bsky.feed.post record: Record/text must not be "
                    "longer than 300 graphemes",
                },
            )
        if rkey in self.records:
            return self.duplicate_reply
        uri = f"at://{self.did}/{body['collection']}/{rkey}"
        cid = f"bafyrei{len(self.records):04d}"
        self.records[rkey] = {"uri": uri, "cid": cid, "value": record}
        return Reply(
            200,
            {
                "uri": uri,
                "cid": cid,
                "commit": {"cid": "bafyc", "rev": "3l"},
                "validationStatus": "valid",
            },
        )

    def engage(self, uri: str, **counts: int) -> None:
        """The AppView counts this for the post: likeCount, repostCount, replyCount,
        quoteCount, bookmarkCount."""
        self.counts.setdefault(uri, {}).update(counts)

    def _get_posts(self, request: Recorded) -> Reply:
        """app.bsky.feed.getPosts, as the PDS proxies it to the AppView: a postView per URI it
        knows (deleted posts are left out), at most 25 URIs."""
        uris = request.query.get("uris", [])
        if not uris or len(uris) > 25:
            return Reply(400, {"error": "InvalidRequest", "message": "uris must have 1 to 25"})
        by_uri = {r["uri"]: r for r in self.records.values()}
        posts = []
        for uri in uris:
            record = by_uri.get(uri)
            if record is None:
                continue
            counts = {"likeCount": 0, "repostCount": 0, "replyCount": 0, "quoteCount": 0}
            posts.append(
                {
                    "uri": uri,
                    "cid": record["cid"],
                    "author": {"did": self.did, "handle": self.handle},
                    "record": record["value"],
                    "indexedAt": "2026-05-01T10:00:00.000Z",
                    **counts,
                    **self.counts.get(uri, {}),
                }
            )
        return Reply(200, {"posts": posts})

    def delete_post(self, uri: str) -> None:
        """The person deleted the post."""
        self.records = {k: r for k, r in self.records.items() if r["uri"] != uri}

    def _get_record(self, request: Recorded) -> Reply:
        repo = request.query.get("repo", [""])[0]
        rkey = request.query.get("rkey", [""])[0]
        found = self.records.get(rkey) if repo in (self.did, self.handle) else None
        if found is None:
            return Reply(
                400,
                {
                    "error": "RecordNotFound",
                    "message": f"Could not locate record: at://{repo}/app.bsky.feed.post/{rkey}",
                },
            )
        return Reply(200, found)


class FakeMediaHost(FakeServer):
    """Serves image bytes for media items given by URL."""

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        super().__init__()
        self.files = files

    def respond(self, request: Recorded) -> Reply:
        found = self.files.get(request.path)
        if found is None:
            return Reply(404, {"error": "not found"})
        content, mime = found
        return Reply(200, content, {"Content-Type": mime})
