"""The `bluesky` platform: app.bsky.feed.post records written to the account's PDS over XRPC.

Account
    handle: the account's handle (the createSession identifier).
    external_id: its DID, when known.
    settings (non-secret): `service_url` (default "https://bsky.social"), `langs` (list of
    BCP 47 tags) or `language`.
    credentials (secret): `app_password`; optionally an existing session's `accessJwt`,
    `refreshJwt` and `did`.

Media items (images only): {"url": ...} or {"data": <base64>}, with "alt" (required, may be "")
and optional "mime_type" and "size".

What the documentation says, and how it is used
-----------------------------------------------
* Sessions: com.atproto.server.createSession {identifier, password} → accessJwt, refreshJwt,
  did; com.atproto.server.refreshSession "Requires auth using the 'refreshJwt' (not the
  'accessJwt')" (https://docs.bsky.app/docs/api/com-atproto-server-refresh-session). The PDS
  rejects an expired access token with 400 {"error": "ExpiredToken", "message": "Token has
  expired"} (401 from the entryway), an unverifiable one with 400 "InvalidToken". On either
  `publish` refreshes once, falls back to createSession with the app password, and raises
  NeedsAuth when that fails too. Sessions are cached per account in memory (createSession is
  limited to 30 per 5 minutes and 300 per day per account, per
  https://docs.bsky.app/docs/advanced-guides/rate-limits); `on_session` is told of new tokens
  so a caller can store them.
* The record key. app.bsky.feed.post declares `"key": "tid"` and https://atproto.com/specs/
  record-key says records of such collections use TID keys; posts the PDS accepts under other
  keys are known not to show in the Bluesky app (bluesky-social/social-app#8654). So the key is
  a TID (https://atproto.com/specs/tid: 13 base32-sortable characters, top bit 0, 53 bits of
  microseconds, 10 bits of clock id) derived from SHA-256 of the idempotency key: the
  microseconds fall in 2000-01-01 .. 2008-12 (2**48 µs), before atproto existed, so they can
  never collide with a TID the PDS generates, and never lie in the future; clock id and
  timestamp together keep 58 bits of the hash.
* A repeated key. createRecord on an existing rkey is *not* answered with a clean error by the
  reference PDS today: it returns HTTP 500 {"error": "InternalServerError", "message":
  "Internal Server Error"} (bluesky-social/atproto#3718, bluesky-social/indigo#873).
  bluesky-social/atproto#4728 (open, March 2026) adds an XRPC error for it to the
  createRecord and applyWrites lexicons; other PDS implementations answer 409
  "RecordAlreadyExists". So after a 5xx, 409, or 400 whose error names an existing record,
  `publish` asks com.atproto.repo.getRecord for the key: found → success with that record's
  uri; not found → the original error.
* getRecord answers 400 {"error": "RecordNotFound"} for a missing record (lexicon
  com.atproto.repo.getRecord); `lookup` returns None then.
* Facets (https://docs.bsky.app/docs/advanced-guides/post-richtext, lexicon
  app.bsky.richtext.facet): byteStart inclusive, byteEnd exclusive, "counting bytes of the
  UTF-8 encoded text". Links (http/https), mentions (`@handle`, resolved to a DID with
  com.atproto.identity.resolveHandle; an unresolvable handle gets no facet, as the official SDK
  does) and hashtags (`#tag`, stored without `#`, at most 64 graphemes, not all digits).
* Limits: app.bsky.feed.post text maxGraphemes 300 (maxLength 3000 bytes);
  app.bsky.embed.images at most 4 images, `alt` required, each blob at most 1,000,000 bytes.
* Rate limits: 429 with RateLimit-Limit/-Remaining/-Reset/-Policy headers (IETF draft);
  `retry_after` comes from Retry-After, else RateLimit-Reset (epoch seconds on Bluesky's PDS).
* Metrics: app.bsky.feed.getPosts?uris=<at-uri> (lexicon app.bsky.feed.getPosts, at most 25
  URIs; each app.bsky.feed.defs#postView carries `likeCount`, `repostCount`, `replyCount`,
  `quoteCount`, and `bookmarkCount` on newer AppViews) → likes, reposts, replies, quotes
  (bookmarks in `extra`). It is an AppView query: asked of the account's PDS with its session,
  which proxies app.bsky.* calls to the AppView. A post the AppView no longer has (deleted) is
  left out of `posts`: a PermanentError. Bluesky counts no views.

What the documentation leaves unclear
-------------------------------------
* The error name and status for "record already exists" until #4728 ships; handled by asking.
* Whether the AppView minds a TID key whose time is far from `createdAt` (nothing found says
  it does; the spec says TID keys "should not be trusted" as timestamps).
* Which status an expired token gets (400 from the PDS, 401 from entryway and AppView): both
  are treated alike.
* The grapheme count is an approximation of UAX #29 (see herald_common.platforms.http).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from herald_common.errors import NeedsAuth, PermanentError, PlatformError
from herald_common.platforms.base import (
    AccountRef,
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
    error_code,
    grapheme_length,
    json_object,
    media_bytes,
    status_error,
    transport_error,
)

COLLECTION = "app.bsky.feed.post"
DEFAULT_SERVICE = "https://bsky.social"
MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000
MAX_TAG_GRAPHEMES = 64
#: Where a 429's reset time is, after Retry-After.
RESET_HEADERS = ("ratelimit-reset", "x-ratelimit-reset")
_AUTH_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthRequired", "AuthMissing"})
_EXISTS_ERRORS = frozenset({"RecordAlreadyExists", "RecordExists", "DuplicateRecord"})

_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_YEAR_2000_MICROS = 946_684_800 * 1_000_000

# Patterns after the post-richtext guide; a facet may start the text or follow a space or "(".
_LINK = re.compile(r"(?:^|(?<=[\s(]))(https?://[^\s]+)", re.IGNORECASE)
_MENTION = re.compile(
    r"(?:^|(?<=[\s(]))@((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)"
)
_HASHTAG = re.compile(r"(?:^|(?<=\s))[#＃]([^\s#＃\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2]+)")
_TRAILING_PUNCTUATION = ".,;:!?'\""


class BlueskySettings(BaseModel):
    """The non-secret options of a Bluesky account."""

    model_config = ConfigDict(extra="forbid", strict=True)

    service_url: str = Field(
        default=DEFAULT_SERVICE, pattern=r"^https?://[^/\s]+/?$", max_length=300
    )
    langs: list[str] | None = Field(default=None, max_length=3)
    language: str | None = Field(default=None, max_length=35)


class BlueskyCredentials(BaseModel):
    """The secrets of a Bluesky account: an app password, and the session made from it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    app_password: str = Field(min_length=1, max_length=200)
    accessJwt: str | None = Field(default=None, max_length=8000)  # the XRPC names
    refreshJwt: str | None = Field(default=None, max_length=8000)
    did: str | None = Field(default=None, max_length=200)


def record_key(idempotency_key: str) -> str:
    """The TID record key for an idempotency key: the same key always gives the same TID."""
    digest = hashlib.sha256(f"herald:{idempotency_key}".encode()).digest()
    bits = int.from_bytes(digest[:8], "big")
    micros = _YEAR_2000_MICROS + (bits >> 16) % (1 << 48)
    value = (micros << 10) | (bits & 0x3FF)
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


@dataclass(frozen=True)
class Session:
    """An XRPC session on the account's PDS."""

    did: str
    access_jwt: str
    refresh_jwt: str | None


def _byte_index(text: str, char_index: int) -> int:
    return len(text[:char_index].encode("utf-8"))


def _trim_link(url: str) -> str:
    url = url.rstrip(_TRAILING_PUNCTUATION)
    # A closing parenthesis belongs to the URL only when the URL opened one.
    while url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1].rstrip(_TRAILING_PUNCTUATION)
    return url


def find_facets(text: str, resolve: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """Link, mention and hashtag facets with UTF-8 byte offsets; `resolve` maps handle → DID."""
    facets: list[tuple[int, dict[str, Any]]] = []

    def add(start: int, end: int, feature: dict[str, Any]) -> None:
        facets.append(
            (
                start,
                {
                    "index": {
                        "byteStart": _byte_index(text, start),
                        "byteEnd": _byte_index(text, end),
                    },
                    "features": [feature],
                },
            )
        )

    for match in _LINK.finditer(text):
        url = _trim_link(match.group(1))
        start = match.start(1)
        add(start, start + len(url), {"$type": "app.bsky.richtext.facet#link", "uri": url})
    for match in _MENTION.finditer(text):
        did = resolve(match.group(1).lower())
        if did:
            add(
                match.start(),
                match.end(1),
                {"$type": "app.bsky.richtext.facet#mention", "did": did},
            )
    for match in _HASHTAG.finditer(text):
        tag = match.group(1).rstrip(_TRAILING_PUNCTUATION)
        if not tag or tag.isdigit() or grapheme_length(tag) > MAX_TAG_GRAPHEMES:
            continue
        start = match.start()
        add(start, match.start(1) + len(tag), {"$type": "app.bsky.richtext.facet#tag", "tag": tag})
    return [facet for _, facet in sorted(facets, key=lambda item: item[0])]


class BlueskyPlatform(Platform):
    """Publishes posts to each account's PDS, keyed so a repeat finds the first post."""

    name = "bluesky"
    # Writes cost points: 5,000 per hour and 35,000 per day per account, a create 3 points
    # (docs.bsky.app/docs/advanced-guides/rate-limits): 1,666 creates an hour. A publish may
    # also upload up to 4 blobs; 300 posts per hour keeps well inside both windows.
    pacing = (Pace("account", 300, 3600),)

    def __init__(
        self,
        client: httpx.Client,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_session: Callable[[AccountRef, Mapping[str, str]], None] | None = None,
    ) -> None:
        self._client = client
        self._now = now
        self._on_session = on_session
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    # -- validate ---------------------------------------------------------------------------

    def validate(
        self, text: str, media: list[Mapping[str, Any]], account: AccountRef
    ) -> list[Violation]:
        violations: list[Violation] = []
        length = grapheme_length(text)
        if length > MAX_GRAPHEMES:
            violations.append(
                Violation(
                    "max_graphemes",
                    f"has {length} characters; Bluesky takes at most {MAX_GRAPHEMES}",
                )
            )
        elif len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            violations.append(
                Violation("max_bytes", f"is longer than {MAX_TEXT_BYTES} bytes of UTF-8")
            )
        if not text.strip() and not media:
            violations.append(Violation("empty", "a post needs text or images"))
        if len(media) > MAX_IMAGES:
            violations.append(
                Violation("max_images", f"has {len(media)} images; Bluesky takes at most 4")
            )
        for number, item in enumerate(media, start=1):
            if "alt" not in item or not isinstance(item.get("alt"), str):
                violations.append(
                    Violation("alt_text", f"image {number} needs alt text (it may be empty)")
                )
            mime = item.get("mime_type") or item.get("content_type")
            if mime and not str(mime).startswith("image/"):
                violations.append(
                    Violation("media_type", f"image {number} is {mime}; Bluesky takes images")
                )
            size = _known_size(item)
            if size is not None and size > MAX_IMAGE_BYTES:
                violations.append(
                    Violation(
                        "image_size",
                        f"image {number} is {size:,} bytes; Bluesky takes at most "
                        f"{MAX_IMAGE_BYTES:,}",
                    )
                )
            if not (item.get("url") or item.get("data")):
                violations.append(Violation("media", f"image {number} has no url or data"))
        return violations

    # -- publish ----------------------------------------------------------------------------

    def publish(self, request: PublishRequest) -> PublishResult:
        account = request.account
        rkey = record_key(request.idempotency_key)
        session = self._session(account)
        record: dict[str, Any] = {
            "$type": COLLECTION,
            "text": request.text,
            "createdAt": self._now().astimezone(UTC).isoformat(timespec="milliseconds"),
        }
        facets = find_facets(request.text, lambda handle: self._resolve(account, handle))
        if facets:
            record["facets"] = facets
        langs = account.settings.get("langs") or (
            [account.settings["language"]] if account.settings.get("language") else None
        )
        if langs:
            record["langs"] = list(langs)
        if request.media:
            record["embed"] = {
                "$type": "app.bsky.embed.images",
                "images": [
                    self._upload(account, item, number)
                    for number, item in enumerate(request.media, start=1)
                ],
            }
        response, session = self._xrpc(
            account,
            "POST",
            "com.atproto.repo.createRecord",
            json={"repo": session.did, "collection": COLLECTION, "rkey": rkey, "record": record},
        )
        if response.status_code == 200:
            return self._result(account, rkey, response)
        if self._may_exist(response):
            # The record may be there from an earlier try: then this publish already happened.
            existing = self._get_record(account, session.did, rkey)
            if existing is not None:
                return existing
        raise self._error(response)

    def _upload(self, account: AccountRef, item: Mapping[str, Any], number: int) -> dict[str, Any]:
        content, mime = media_bytes(self._client, self.name, item)
        if len(content) > MAX_IMAGE_BYTES:
            raise PermanentError(
                f"bluesky: image {number} is {len(content):,} bytes; Bluesky takes at most "
                f"{MAX_IMAGE_BYTES:,}"
            )
        response, _ = self._xrpc(
            account,
            "POST",
            "com.atproto.repo.uploadBlob",
            content=content,
            headers={"Content-Type": mime or "application/octet-stream"},
        )
        if response.status_code != 200:
            raise self._error(response)
        return {"alt": str(item.get("alt") or ""), "image": response.json()["blob"]}

    def _resolve(self, account: AccountRef, handle: str) -> str | None:
        try:
            response = self._client.get(
                self._url(account, "com.atproto.identity.resolveHandle"),
                params={"handle": handle},
            )
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc
        if response.status_code == 200:
            did = response.json().get("did")
            return did if isinstance(did, str) else None
        if response.status_code == 400:  # no such handle: the text stays plain, as in the app
            return None
        raise self._error(response)

    @staticmethod
    def _may_exist(response: httpx.Response) -> bool:
        if response.status_code >= 500 or response.status_code == 409:
            return True
        if response.status_code != 400:
            return False
        code = error_code(response) or ""
        return code in _EXISTS_ERRORS or "already exists" in response.text.lower()

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        account = request.account
        repo = account.external_id or account.credentials.get("did") or account.handle
        return self._get_record(account, repo, record_key(request.idempotency_key))

    def _get_record(self, account: AccountRef, repo: str, rkey: str) -> PublishResult | None:
        # getRecord needs no auth (its lexicon says so), so it is asked without a session.
        try:
            response = self._client.get(
                self._url(account, "com.atproto.repo.getRecord"),
                params={"repo": repo, "collection": COLLECTION, "rkey": rkey},
            )
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc
        if response.status_code == 200:
            return self._result(account, rkey, response)
        if response.status_code in (400, 404) and error_code(response) == "RecordNotFound":
            return None
        raise self._error(response)

    def _result(self, account: AccountRef, rkey: str, response: httpx.Response) -> PublishResult:
        uri = response.json()["uri"]
        return PublishResult(
            platform_post_id=uri,
            url=f"https://bsky.app/profile/{account.handle}/post/{rkey}",
            http_status=response.status_code,
        )

    # -- metrics ----------------------------------------------------------------------------

    def metrics(self, request: MetricsRequest) -> PostMetrics:
        uri = request.platform_post_id
        if not uri.startswith("at://"):
            raise PermanentError(f"bluesky: {uri!r} is not a post's at:// URI")
        response, _ = self._xrpc(
            request.account, "GET", "app.bsky.feed.getPosts", params={"uris": uri}
        )
        if response.status_code != 200:
            raise self._error(response)
        posts = json_object(self.name, response).get("posts")
        view = next(
            (p for p in posts or () if isinstance(p, Mapping) and p.get("uri") == uri), None
        )
        if view is None:
            raise PermanentError(f"bluesky: post {uri} is gone (deleted, or hidden)")
        bookmarks = as_count(view.get("bookmarkCount"))
        return PostMetrics(
            likes=as_count(view.get("likeCount")),
            reposts=as_count(view.get("repostCount")),
            replies=as_count(view.get("replyCount")),
            quotes=as_count(view.get("quoteCount")),
            extra={"bookmarks": bookmarks} if bookmarks is not None else {},
        )

    # -- sessions ---------------------------------------------------------------------------

    def _session(self, account: AccountRef) -> Session:
        with self._lock:
            cached = self._sessions.get(account.id)
        if cached is not None:
            return cached
        credentials = account.credentials
        if credentials.get("accessJwt") and credentials.get("did"):
            session = Session(
                did=credentials["did"],
                access_jwt=credentials["accessJwt"],
                refresh_jwt=credentials.get("refreshJwt"),
            )
            self._remember(account, session, announce=False)
            return session
        return self._create_session(account)

    def _create_session(self, account: AccountRef) -> Session:
        password = account.credentials.get("app_password")
        if not password:
            raise NeedsAuth("bluesky: the account has no app password; connect it again")
        response = self._post_session(
            account,
            "com.atproto.server.createSession",
            json={"identifier": account.handle, "password": password},
        )
        if response.status_code != 200:
            if response.status_code in (400, 401):
                raise NeedsAuth(
                    f"bluesky: signing in failed: {xrpc_message(response)}",
                    http_status=response.status_code,
                )
            raise self._error(response)
        return self._remember(account, _session_from(response), announce=True)

    def _refresh(self, account: AccountRef, stale: Session) -> Session:
        """A fresh session: refreshSession first, else createSession; NeedsAuth when both fail."""
        with self._lock:
            current = self._sessions.get(account.id)
        if current is not None and current.access_jwt != stale.access_jwt:
            return current  # another thread refreshed it meanwhile
        if stale.refresh_jwt:
            response = self._post_session(
                account,
                "com.atproto.server.refreshSession",
                headers={"Authorization": f"Bearer {stale.refresh_jwt}"},
            )
            if response.status_code == 200:
                return self._remember(account, _session_from(response), announce=True)
            if response.status_code not in (400, 401):
                raise self._error(response)
        with self._lock:
            self._sessions.pop(account.id, None)
        return self._create_session(account)

    def _post_session(self, account: AccountRef, method: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.post(self._url(account, method), **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc

    def _remember(self, account: AccountRef, session: Session, *, announce: bool) -> Session:
        with self._lock:
            self._sessions[account.id] = session
        if announce and self._on_session is not None:
            tokens = {"did": session.did, "accessJwt": session.access_jwt}
            if session.refresh_jwt:
                tokens["refreshJwt"] = session.refresh_jwt
            self._on_session(account, tokens)
        return session

    # -- HTTP -------------------------------------------------------------------------------

    def _xrpc(
        self, account: AccountRef, http_method: str, method: str, **kwargs: Any
    ) -> tuple[httpx.Response, Session]:
        """One authenticated call; on an expired or invalid token, refresh once and repeat."""
        session = self._session(account)
        response = self._authed(account, session, http_method, method, **kwargs)
        if is_auth_failure(response):
            session = self._refresh(account, session)
            response = self._authed(account, session, http_method, method, **kwargs)
            if is_auth_failure(response):
                raise NeedsAuth(
                    f"bluesky: the session was refused after signing in again: "
                    f"{xrpc_message(response)}",
                    http_status=response.status_code,
                )
        return response, session

    def _authed(
        self, account: AccountRef, session: Session, http_method: str, method: str, **kwargs: Any
    ) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {session.access_jwt}"}
        try:
            return self._client.request(
                http_method, self._url(account, method), headers=headers, **kwargs
            )
        except httpx.TransportError as exc:
            raise transport_error(self.name, exc) from exc

    @staticmethod
    def _url(account: AccountRef, method: str) -> str:
        base = str(account.settings.get("service_url") or DEFAULT_SERVICE).rstrip("/")
        return f"{base}/xrpc/{method}"

    def _error(self, response: httpx.Response) -> PlatformError:
        return status_error(self.name, response, reset_headers=RESET_HEADERS)


def is_auth_failure(response: httpx.Response) -> bool:
    """Whether the PDS refused the token (401, or 400 ExpiredToken/InvalidToken/AuthRequired)."""
    if response.status_code == 401:
        return True
    return response.status_code == 400 and error_code(response) in _AUTH_ERRORS


def xrpc_message(response: httpx.Response) -> str:
    """The XRPC error's `error` and `message`, e.g. "ExpiredToken: Token has expired"."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, Mapping):
        parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return f"HTTP {response.status_code}"


def _session_from(response: httpx.Response) -> Session:
    body = response.json()
    return Session(
        did=body["did"], access_jwt=body["accessJwt"], refresh_jwt=body.get("refreshJwt")
    )


def _known_size(item: Mapping[str, Any]) -> int | None:
    size = item.get("size")
    if isinstance(size, int):
        return size
    data = item.get("data")
    if isinstance(data, bytes):
        return len(data)
    if isinstance(data, str):
        # base64: 4 characters carry 3 bytes, less the padding.
        return len(data) * 3 // 4 - data.count("=", -2)
    return None
