"""What the HTTP adapters share: httpx outcomes as Herald's platform errors, media, text length.

PlatformError
├── TransientError   network failure or timeout, 5xx, 408, 425 (with `retry_after`)
│   └── RateLimited  429, or a platform's own "limit reached" answer: waits, spends no attempt
├── NeedsAuth        401 (and what an adapter decides is an auth failure)
└── PermanentError   every other 4xx, with the platform's own words

Adapters call `transport_error` for `httpx.TransportError` and `status_error` for a response
they did not expect; each adapter first handles the statuses its platform gives a special
meaning (an expired token to refresh, a record that already exists).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import ipaddress
import math
import mimetypes
import socket
import time
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from herald_common.errors import (
    FieldError,
    InvalidInput,
    NeedsAuth,
    PermanentError,
    PlatformError,
    RateLimited,
    TransientError,
)

#: Statuses that say "not now" rather than "never".
RETRYABLE_STATUSES = frozenset({408, 425, 429})

#: Epoch values above this are absolute times; below it, a number of seconds to wait.
_EPOCH_THRESHOLD = 1_000_000_000


def transport_error(platform: str, exc: httpx.TransportError) -> TransientError:
    """A network failure or timeout: the request may or may not have reached the platform."""
    return TransientError(f"{platform}: {_describe_transport(exc)}", http_status=None)


def _describe_transport(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"the request timed out ({type(exc).__name__})"
    return f"the platform could not be reached ({type(exc).__name__})"


def error_text(response: httpx.Response) -> str:
    """The platform's own words for a failed response: its JSON `error`/`message`, else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        error = body.get("error")
        message = body.get("message") or body.get("error_description")
        parts = [str(p) for p in (error, message) if isinstance(p, str) and p]
        if parts:
            return ": ".join(parts)
    text = response.text.strip()
    return text[:300] if text else (response.reason_phrase or f"HTTP {response.status_code}")


def error_code(response: httpx.Response) -> str | None:
    """The machine-readable `error` field of a JSON error body, if any."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, Mapping) and isinstance(body.get("error"), str):
        return body["error"]
    return None


def retry_after_seconds(
    headers: httpx.Headers,
    *,
    reset_headers: tuple[str, ...] = (),
    now: Callable[[], float] = time.time,
) -> float | None:
    """Seconds to wait before trying again, from `Retry-After` or else the first reset header.

    `Retry-After` is delta-seconds or an HTTP date (RFC 9110). A reset header may be an ISO 8601
    time (Mastodon's X-RateLimit-Reset), epoch seconds (Bluesky's RateLimit-Reset), or a number
    of seconds to wait (the IETF RateLimit header draft); a number is read as epoch seconds when
    it is large enough to be one.
    """
    value = headers.get("retry-after")
    if value is not None:
        seconds = _parse_retry_after(value.strip(), now)
        if seconds is not None:
            return seconds
    for name in reset_headers:
        value = headers.get(name)
        if value is None:
            continue
        seconds = _parse_reset(value.strip(), now)
        if seconds is not None:
            return seconds
    return None


def _parse_retry_after(value: str, now: Callable[[], float]) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(when.timestamp() - now(), 0.0)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _parse_reset(value: str, now: Callable[[], float]) -> float | None:
    try:
        number = float(value)
    except ValueError:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(when.timestamp() - now(), 0.0)
    if not math.isfinite(number):
        return None
    if number > _EPOCH_THRESHOLD:
        return max(number - now(), 0.0)
    return max(number, 0.0)


def status_error(
    platform: str,
    response: httpx.Response,
    *,
    reset_headers: tuple[str, ...] = (),
    now: Callable[[], float] = time.time,
) -> PlatformError:
    """The error for an unexpected response: retryable, needs-auth or permanent."""
    status = response.status_code
    message = f"{platform}: {error_text(response)} (HTTP {status})"
    if status == 429:
        retry_after = retry_after_seconds(response.headers, reset_headers=reset_headers, now=now)
        return RateLimited(message, http_status=status, retry_after=retry_after)
    if status >= 500 or status in RETRYABLE_STATUSES:
        retry_after = retry_after_seconds(response.headers, now=now)
        return TransientError(message, http_status=status, retry_after=retry_after)
    if status == 401:
        return NeedsAuth(message, http_status=status)
    return PermanentError(message, http_status=status)


def as_count(value: Any) -> int | None:
    """A platform's count as an int; None when it gave none (absent, null, or not a count).

    Metrics keep "not given" apart from 0, so nothing here turns a missing value into 0.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def json_object(platform: str, response: httpx.Response) -> dict[str, Any]:
    """A successful response's JSON object; a TransientError when it is not one (a read that
    a gateway answered with something else is worth asking again)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TransientError(
            f"{platform}: an unreadable answer (HTTP {response.status_code})",
            http_status=response.status_code,
        )
    return body


#: The largest file fetched for an upload (X takes videos up to 512 MB).
MAX_MEDIA_BYTES = 512 * 1024 * 1024


def media_bytes(
    client: httpx.Client,
    platform: str,
    item: Mapping[str, Any],
    *,
    max_bytes: int = MAX_MEDIA_BYTES,
) -> tuple[bytes, str | None]:
    """The bytes of one media item (`data`, base64, or fetched from `url`) and its MIME type."""
    mime = item.get("mime_type") or item.get("content_type")
    data = item.get("data")
    if data is not None:
        if isinstance(data, bytes):
            return data, mime
        try:
            return base64.b64decode(str(data), validate=True), mime
        except (binascii.Error, ValueError):
            raise PermanentError(f"{platform}: media data is not valid base64") from None
    url = item.get("url")
    if not url:
        raise PermanentError(f"{platform}: a media item needs `url` or `data`")
    where = f"{platform} (fetching media {shown_url(str(url))})"
    try:
        with client.stream("GET", str(url)) as response:
            if response.status_code != 200:
                response.read()
                raise status_error(where, response)
            content = _read_capped(response, where, max_bytes)
    except httpx.TransportError as exc:
        raise transport_error(where, exc) from exc
    header_mime = response.headers.get("content-type", "").split(";", 1)[0].strip() or None
    return content, mime or header_mime


def _read_capped(response: httpx.Response, where: str, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PermanentError(f"{where}: the file is {int(declared):,} bytes; at most {max_bytes:,}")
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise PermanentError(f"{where}: the file is over {max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def shown_url(url: str) -> str:
    """A URL fit for messages and logs: no query string or credentials (signed URLs carry them)."""
    try:
        parts = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    return str(parts.copy_with(query=None, fragment=None, username=None, password=None))


class PublicOnlyTransport(httpx.HTTPTransport):
    """Connects only to public addresses: media URLs and instance URLs come from tenants.

    Every request — each redirect hop included, since httpx sends each through the transport —
    is refused when its host is, or resolves to, a loopback, private, link-local (cloud
    metadata), multicast, reserved or unspecified address. The name is resolved here and again
    by the connection, so a DNS answer that changes in between (rebinding) is not covered; a
    network policy on the workers' egress is the complete answer.
    """

    def __init__(self, *, allow_private: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._allow_private = allow_private

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self._allow_private:
            refuse_private(request.url.host, request.url.port or 443)
        return super().handle_request(request)


def refuse_private(host: str, port: int) -> None:
    """PermanentError when `host` is or resolves to an address that is not public. The message
    names the host only: what a tenant's name resolves to inside our network is not theirs."""
    problem = address_problem(host, port)
    if problem is not None:
        raise PermanentError(f"refusing to connect to {host}: it {problem}")


def address_problem(host: str, port: int = 443) -> str | None:
    """Why `host` may not be connected to ("is a non-public address", "resolves to a non-public
    address"), or None when it is public. A name that does not resolve passes: the connection
    attempt reports it."""
    literal = _ip(host.strip("[]"))
    if literal is not None:
        return None if is_public(literal) else "is a non-public address"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = _ip(str(info[4][0]))
        if address is None or not is_public(address):
            return "resolves to a non-public address"
    return None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 scope is no part of it
    except ValueError:
        return None


class PublicAddresses:
    """Checks tenants' URLs when they are given (media, webhooks, instance URLs), so that one
    that could only be refused when the post goes out is a 422 at once. The same rule as
    PublicOnlyTransport, and switched off by the same setting. URLs under Herald's own
    PUBLIC_URL (an attached image's signed URL) are the operator's, and pass."""

    def __init__(self, *, allow_private: bool, own_url: str | None = None) -> None:
        self._allow_private = allow_private
        self._own = own_url.rstrip("/") + "/" if own_url else None

    def errors(self, urls: Mapping[str, str | None]) -> list[FieldError]:
        """A FieldError per URL (keyed by its field) whose host is not a public address."""
        if self._allow_private:
            return []
        errors = []
        for field, url in urls.items():
            if url and self._own and url.startswith(self._own):
                continue
            try:
                host = httpx.URL(url).host if url else ""
            except (httpx.InvalidURL, TypeError):
                continue  # the schema's own check says what is wrong with it
            problem = address_problem(host) if host else None
            if problem is not None:
                errors.append(
                    FieldError(field, f"its host {problem}; Herald connects to public hosts only")
                )
        return errors

    def check(self, urls: Mapping[str, str | None]) -> None:
        """InvalidInput naming every URL whose host is not a public address."""
        errors = self.errors(urls)
        if errors:
            raise InvalidInput(errors)


#: NAT64's well-known prefix (RFC 6052): its last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is global unicast — an IPv6 address that carries an IPv4 one
    (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, 6to4, Teredo, NAT64) only if that one is
    too: `[::127.0.0.1]` reaches loopback on a host that routes it."""
    if isinstance(address, ipaddress.IPv6Address):
        value = int(address)
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and (value >> 32 == 0 or address in _NAT64):
            embedded = ipaddress.IPv4Address(value & 0xFFFFFFFF)
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not address.is_multicast


def media_mime(item: Mapping[str, Any]) -> str | None:
    """The item's MIME type: its own `mime_type`, else guessed from its file name or URL."""
    mime = item.get("mime_type") or item.get("content_type")
    if isinstance(mime, str) and mime:
        return mime.split(";", 1)[0].strip().lower()
    for key in ("filename", "url"):
        value = item.get(key)
        if isinstance(value, str) and value:
            guessed, _ = mimetypes.guess_type(httpx.URL(value).path if key == "url" else value)
            if guessed:
                return guessed.lower()
    return None


def filename_for(item: Mapping[str, Any], index: int) -> str:
    """A file name for a multipart upload: the item's own, else one derived from its URL."""
    name = item.get("filename")
    if isinstance(name, str) and name:
        return name
    url = item.get("url")
    if isinstance(url, str) and url:
        tail = httpx.URL(url).path.rsplit("/", 1)[-1]
        if tail:
            return tail
    return f"media-{index}"


# Text measures the adapters share. Platforms count user-perceived characters (grapheme
# clusters, UAX #29). The `regex` package's \X would do this exactly but is not a dependency,
# so this is an approximation of the extended grapheme cluster rules that covers what posts
# contain: combining marks, variation selectors, emoji modifiers and ZWJ sequences, flags
# (regional-indicator pairs), tag sequences, Hangul jamo and CR LF. It does not implement the
# Prepend and Indic conjunct rules.

_ZWJ = "\u200d"


def _is_extend(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or code == 0x200D
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers (category Sk)
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences (subdivision flags)
        or 0x1160 <= code <= 0x11FF  # Hangul medial vowels and final consonants
        or 0xD7B0 <= code <= 0xD7FF
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _is_pictographic(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.category(char) == "So" or 0x1F000 <= code <= 0x1FAFF or 0x2600 <= code <= 0x27BF
    )


def graphemes(text: str) -> list[str]:
    """The text split into (approximate) extended grapheme clusters."""
    clusters: list[str] = []
    i, n = 0, len(text)
    while i < n:
        start = i
        char = text[i]
        i += 1
        if char == "\r" and i < n and text[i] == "\n":
            i += 1
        elif char not in "\r\n":
            if _is_regional_indicator(char) and i < n and _is_regional_indicator(text[i]):
                i += 1
            while i < n:
                following = text[i]
                if _is_extend(following) or (text[i - 1] == _ZWJ and _is_pictographic(following)):
                    i += 1
                    continue
                break
        clusters.append(text[start:i])
    return clusters


def grapheme_length(text: str) -> int:
    """How many user-perceived characters the text has."""
    return len(graphemes(text))
