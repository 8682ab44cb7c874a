"""What Herald's three Meta adapters share: Graph errors, usage headers, the container flow.

`facebook`, `instagram` and `threads` all speak Meta's Graph API (graph.facebook.com and
graph.threads.net). This module holds what they have in common:

* `GraphSession`: GET/POST against one Graph host, with the token in the Authorization header
  (Graph takes it there as well as in the `access_token` parameter; the header keeps it out of
  URLs and so out of httpx's request log).
* `graph_error`: a failed Graph response as a Herald platform error.
* `usage_retry_after`: how long the usage headers say to wait.
* `ContainerPlatform`: the create-container → wait → publish flow Instagram and Threads share,
  made safe to repeat with the publish checkpoint.

What the documentation says, and how it is used
-----------------------------------------------
* Error bodies (https://developers.facebook.com/docs/graph-api/guides/error-handling):
  `{"error": {"message", "type", "code", "error_subcode", "error_user_title", "error_user_msg",
  "fbtrace_id"}}`, usually with HTTP 400 whatever the cause. They are classified by code, not
  by HTTP status:
  - code 190 (access token expired/invalid: subcodes 458-467 say why, 463 = expired), 102 (API
    session), 2500 (no active token), and an OAuthException without a code → NeedsAuth;
    10 and 200-299 (permission missing or removed: "handle the missing permissions", i.e. the
    account must grant them again) → NeedsAuth.
  - 4, 17, 32, 613 (app / user / page / custom-level rate limits), 80000-80014 (Business Use
    Case limits, https://developers.facebook.com/docs/graph-api/overview/rate-limiting), 341
    ("application limit reached") → TransientError with a `retry_after` from the headers.
  - `is_transient: true`, 1 and 2 ("temporary issue due to downtime. Wait and retry"), and
    Instagram's -1/-2 ("Instagram server error. Try again", "took too long to download",
    https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes)
    and 368 ("temporarily blocked ... wait and retry") → TransientError.
  - Everything else → PermanentError carrying Graph's message, `error_user_msg`, the code and
    subcode and the `fbtrace_id` (which Meta asks for in bug reports).
  Each adapter can add subcodes it knows to be transient (Instagram 2207042 "publishing limit",
  Threads 4279009 "container not found yet").
* Usage headers (same rate-limiting page): `X-App-Usage` `{"call_count", "total_cputime",
  "total_time"}` in percent of a rolling hour; `X-Business-Use-Case-Usage` `{"<business
  object id>": [{"type", "call_count", "total_cputime", "total_time",
  "estimated_time_to_regain_access"}]}` where the last is "time, in minutes, until calls will
  no longer be throttled"; `X-Ad-Account-Usage` `{"acc_id_util_pct", "reset_time_duration"}`
  (seconds). A throttling error (or a 429) gets `retry_after` = `Retry-After` if sent, else
  the largest of the BUC estimates (×60) and the ad-account reset duration, else — when
  X-App-Usage shows a metric at or above 100 % — `APP_USAGE_RETRY_AFTER` (the docs give no time
  for the rolling hour; 5 minutes is this module's choice).
* Containers (Instagram content publishing, Threads posts): a container is created, becomes
  FINISHED when the media are processed (IN_PROGRESS until then; ERROR, EXPIRED after 24 h
  unpublished), and `…_publish?creation_id=` makes it a post; the container then reads
  PUBLISHED. Both APIs document the status read (`GET /{container-id}?fields=status_code` on
  Instagram, `?fields=status,error_message` on Threads) as the way to learn whether a publish
  whose answer was lost went out, and both count publishes against a 24-hour moving quota
  readable at `…/content_publishing_limit` / `…/threads_publishing_limit` `{"data":
  [{"quota_usage", "config": {"quota_total", "quota_duration"}}]}`.

The container flow and the checkpoint
-------------------------------------
Graph has no idempotency key, so `ContainerPlatform.publish` relies on the checkpoint:

1. checkpoint has `media_id` → the post went out on an earlier try: return it.
2. checkpoint has `container_id` → read its status: PUBLISHED → the post went out (find its media
   id, below); FINISHED / IN_PROGRESS → wait for it and publish *that* container; ERROR /
   EXPIRED → it never went out: start again. Any other status (empty, or one Graph does not
   document) → OutcomeUnknown: whether it was published cannot be told, so a person decides.
3. otherwise create the container (carousel children first) and save `{"container_id",
   "created_at"}` *before* anything can publish it;
4. wait for FINISHED (`poll_interval`, `poll_timeout`; a timeout is StillProcessing, a wait that
   spends no attempt, and the next try carries on with the same container; a carousel item
   that times out is a TransientError, since items are not saved and the next try makes new
   ones), check the publishing quota, publish, and save `media_id` as soon as Graph answers
   (then `permalink`, read best effort).

A success answer without the expected id: creating a container (nothing visible) → a
TransientError; the publish call → OutcomeUnknown (the post may be live). `may_be_public` is
True once a container id (or media id) is saved: the publish call may have been sent.

A crash at any point after step 3 — including one where Graph published the container but its
answer never arrived — leaves the container id behind, and the next try or `lookup` reads the
container instead of making a second one. `lookup` only reads: `media_id` saved → found;
container PUBLISHED → found; container in any other state, or no container saved → None (the
container id is saved before the publish call, so without one nothing was published).

A PUBLISHED container does not name its media. The media id comes from the publish answer when
it arrived; otherwise from the account's newest media (`lookup_limit` of them) whose text equals
the post's and whose timestamp is not older than the container. If exactly one matches it is the
post (and `publish` saves it); otherwise the result carries the container id as
`platform_post_id` and no URL.

What the documentation leaves unclear
-------------------------------------
* What `…_publish` answers for a container that is already PUBLISHED. The flow never asks for
  it knowingly (it reads the status first); when a publish is refused with a permanent error,
  the container's status is read again and PUBLISHED counts as success.
* Whether a container can still be read long after it was published; if the saved container
  cannot be read at all, `publish` raises OutcomeUnknown (a person checks the account) and
  `lookup` raises LookupUnsupported, rather than risk a second post.
* How long to wait once the publishing quota is used up: the window moves, and nothing says when
  the oldest publish leaves it. `quota_retry_after` (default one hour) is used.
* The X-App-Usage wait (see above).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from herald_common.errors import (
    NeedsAuth,
    OutcomeUnknown,
    PermanentError,
    PlatformError,
    RateLimited,
    StillProcessing,
    TransientError,
)
from herald_common.platforms.base import (
    AccountRef,
    LookupUnsupported,
    Platform,
    PublishRequest,
    PublishResult,
    Violation,
)
from herald_common.platforms.http import (
    as_count,
    retry_after_seconds,
    status_error,
    transport_error,
)

log = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=BaseModel)

#: The Graph API version the adapters call (graph.facebook.com; v25.0 was released 2026-02-18).
GRAPH_API_VERSION = "v25.0"
#: The Threads API version (graph.threads.net).
THREADS_API_VERSION = "v1.0"

#: Graph's throttling codes: app (4), user (17), page (32), custom (613), app limit (341),
#: Business Use Case limits (80000-80014).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, *range(80000, 80015)})
#: Codes Graph documents as temporary: retry later.
TEMPORARY_CODES = frozenset({1, 2, -1, -2, 368})
#: Codes that mean the token is expired, invalid or missing.
TOKEN_CODES = frozenset({102, 190, 2500})
#: Codes that mean a permission was not granted or was removed.
PERMISSION_CODES = frozenset({10, *range(200, 300)})

#: Seconds to wait when only X-App-Usage says the app is throttled (the docs give no time).
APP_USAGE_RETRY_AFTER = 300.0


# -- errors and usage headers ---------------------------------------------------------------


@dataclass(frozen=True)
class GraphError:
    """The `error` object of a Graph error body."""

    message: str
    type: str | None = None
    code: int | None = None
    subcode: int | None = None
    is_transient: bool = False
    user_title: str | None = None
    user_msg: str | None = None
    fbtrace_id: str | None = None


def parse_graph_error(response: httpx.Response) -> GraphError | None:
    """The Graph error in a response body, if it has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None
    return GraphError(
        message=str(error.get("message") or "").strip(),
        type=_str_or_none(error.get("type")),
        code=_int_or_none(error.get("code")),
        subcode=_int_or_none(error.get("error_subcode")),
        is_transient=error.get("is_transient") is True,
        user_title=_str_or_none(error.get("error_user_title")),
        user_msg=_str_or_none(error.get("error_user_msg")),
        fbtrace_id=_str_or_none(error.get("fbtrace_id")),
    )


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _header_json(headers: httpx.Headers, name: str) -> Any:
    value = headers.get(name)
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def usage_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds the usage headers say to wait; None when they say nothing about it.

    The largest of X-Business-Use-Case-Usage's `estimated_time_to_regain_access` (minutes) and
    X-Ad-Account-Usage's `reset_time_duration` (seconds); failing those, APP_USAGE_RETRY_AFTER
    when X-App-Usage shows a metric at or above 100 %.
    """
    waits: list[float] = []
    buc = _header_json(headers, "x-business-use-case-usage")
    if isinstance(buc, Mapping):
        for entries in buc.values():
            items = entries if isinstance(entries, list) else [entries]
            for entry in items:
                if isinstance(entry, Mapping):
                    minutes = _number(entry.get("estimated_time_to_regain_access"))
                    if minutes is not None and minutes > 0:
                        waits.append(minutes * 60)
    ad_account = _header_json(headers, "x-ad-account-usage")
    if isinstance(ad_account, Mapping):
        seconds = _number(ad_account.get("reset_time_duration"))
        if seconds is not None and seconds > 0:
            waits.append(seconds)
    if waits:
        return max(waits)
    app = _header_json(headers, "x-app-usage")
    if isinstance(app, Mapping):
        used = [_number(app.get(k)) for k in ("call_count", "total_cputime", "total_time")]
        if any(u is not None and u >= 100 for u in used):
            return APP_USAGE_RETRY_AFTER
    return None


def _throttle_retry_after(response: httpx.Response, now: Callable[[], float]) -> float | None:
    explicit = retry_after_seconds(response.headers, now=now)
    return explicit if explicit is not None else usage_retry_after(response.headers)


def _describe(platform: str, error: GraphError, status: int) -> str:
    text = error.message or error.user_title or "Graph API error"
    if error.user_msg and error.user_msg not in text:
        text = f"{text} — {error.user_msg}"
    code = "" if error.code is None else f"code {error.code}"
    if error.subcode is not None:
        code += f"/{error.subcode}"
    details = ", ".join(
        part
        for part in (code, f"HTTP {status}", error.fbtrace_id and f"fbtrace_id {error.fbtrace_id}")
        if part
    )
    return f"{platform}: {text} ({details})"


#: Subcodes that mean "the account's publishing quota is used up" (Instagram, code 9).
PUBLISHING_LIMIT_SUBCODES = frozenset({2207042})


def graph_error(
    platform: str,
    response: httpx.Response,
    *,
    transient_subcodes: Mapping[int, float | None] | None = None,
    now: Callable[[], float] = time.time,
) -> PlatformError:
    """A failed Graph response as TransientError, NeedsAuth or PermanentError (see module doc).

    `transient_subcodes` maps subcodes the caller knows to be temporary to the `retry_after` to
    give them (None: let the headers or the publisher decide).
    """
    exc = _classify(platform, response, transient_subcodes, now)
    # Keep the parsed body on the error for adapters that react to particular codes.
    exc.graph = parse_graph_error(response)  # type: ignore[attr-defined]
    return exc


def error_details(exc: BaseException) -> GraphError | None:
    """The Graph error body behind an error `graph_error` made, if it had one."""
    details = getattr(exc, "graph", None)
    return details if isinstance(details, GraphError) else None


def _classify(
    platform: str,
    response: httpx.Response,
    transient_subcodes: Mapping[int, float | None] | None,
    now: Callable[[], float],
) -> PlatformError:
    status = response.status_code
    error = parse_graph_error(response)
    if error is None:
        if status == 429:
            return RateLimited(
                status_error(platform, response, now=now).message,
                http_status=status,
                retry_after=_throttle_retry_after(response, now),
            )
        return status_error(platform, response, now=now)
    message = _describe(platform, error, status)
    code = error.code
    if code in TOKEN_CODES or (error.type == "OAuthException" and code is None):
        return NeedsAuth(message, http_status=status)
    if code in PERMISSION_CODES:
        return NeedsAuth(message, http_status=status)
    if code in RATE_LIMIT_CODES or status == 429:
        return RateLimited(
            message, http_status=status, retry_after=_throttle_retry_after(response, now)
        )
    extra = transient_subcodes or {}
    if error.subcode is not None and error.subcode in extra:
        retry_after = extra[error.subcode]
        if retry_after is None:
            retry_after = _throttle_retry_after(response, now)
        # A publishing limit is a wait, not a failure; "media not ready" and the like are
        # ordinary transient errors with a bounded number of tries.
        kind = RateLimited if error.subcode in PUBLISHING_LIMIT_SUBCODES else TransientError
        return kind(message, http_status=status, retry_after=retry_after)
    if error.is_transient or code in TEMPORARY_CODES or status >= 500:
        return TransientError(
            message, http_status=status, retry_after=retry_after_seconds(response.headers, now=now)
        )
    return PermanentError(message, http_status=status)


# -- HTTP -----------------------------------------------------------------------------------


class GraphSession:
    """Calls to one Graph host and version with one account's token."""

    def __init__(
        self,
        client: httpx.Client,
        platform: str,
        base_url: str,
        token: str,
        *,
        transient_subcodes: Mapping[int, float | None] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._platform = platform
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._transient_subcodes = transient_subcodes
        self._now = now

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._call("GET", path, params=params)

    def post(self, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, data=dict(data))

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self._base}/{path.lstrip('/')}"
        try:
            response = self._client.request(method, url, headers=self._headers, **kwargs)
        except httpx.TransportError as exc:
            raise transport_error(self._platform, exc) from exc
        if not response.is_success:
            raise graph_error(
                self._platform,
                response,
                transient_subcodes=self._transient_subcodes,
                now=self._now,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # A success without a readable answer: whether a POST took effect is unknown, so
            # it is not a permanent failure; a retry starts from the checkpoint.
            raise TransientError(
                f"{self._platform}: Graph answered HTTP {response.status_code} without a JSON "
                "object",
                http_status=response.status_code,
            )
        return body


def account_settings(model: type[SettingsT], platform: str, account: AccountRef) -> SettingsT:
    """The account's settings as `model`; a PermanentError when they do not fit it."""
    try:
        return model.model_validate(dict(account.settings))
    except ValidationError as exc:
        raise PermanentError(
            f"{platform}: the account settings are not valid ({_first_problem(exc)})"
        ) from None


def settings_violations(model: type[BaseModel], account: AccountRef) -> list[Violation]:
    """The account's settings checked against `model`, as a `settings` violation if broken."""
    try:
        model.model_validate(dict(account.settings))
    except ValidationError as exc:
        reason = f"the account settings are not valid: {_first_problem(exc)}"
        return [Violation("settings", reason)]
    return []


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
    return f"{where}: {error.get('msg')}"


def access_token(platform: str, account: AccountRef) -> str:
    """The account's access token; NeedsAuth (without any call) when there is none."""
    token = account.credentials.get("access_token")
    if not token:
        raise NeedsAuth(f"{platform}: the account has no access token; connect it again")
    return str(token)


# -- text helpers ---------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")


def comparable(text: str | None) -> str:
    """Text reduced for comparing what was sent with what the platform shows."""
    return _SPACE.sub(" ", text or "").strip()


def parse_time(value: Any) -> float | None:
    """Epoch seconds of a Graph timestamp ("2024-05-01T10:00:00+0000"), None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


#: How far a platform's timestamps may lag Herald's clock when matching posts to a try.
CLOCK_SLACK_SECONDS = 600.0

#: The least a try waits before looking again at a container still processing at its timeout.
STILL_PROCESSING_WAIT = 30.0


# -- the container flow (Instagram, Threads) ------------------------------------------------

IN_PROGRESS, FINISHED, PUBLISHED, ERROR, EXPIRED = (
    "IN_PROGRESS",
    "FINISHED",
    "PUBLISHED",
    "ERROR",
    "EXPIRED",
)


@dataclass(frozen=True)
class ContainerSpec:
    """The containers one post needs: carousel children (may be empty) and the top container."""

    children: tuple[Mapping[str, str], ...]
    parent: Mapping[str, str]


class ContainerPlatform(Platform):
    """Instagram and Threads: container → FINISHED → publish, resumable from the checkpoint."""

    #: Constructor defaults and Graph names that differ between the two platforms.
    default_api_url: ClassVar[str]
    default_api_version: ClassVar[str]
    status_field: ClassVar[str]  # "status_code" (Instagram) | "status" (Threads)
    detail_field: ClassVar[str]  # "status" (Instagram) | "error_message" (Threads)
    create_edge: ClassVar[str]  # "media" | "threads"
    publish_edge: ClassVar[str]  # "media_publish" | "threads_publish"
    limit_edge: ClassVar[str]  # "content_publishing_limit" | "threads_publishing_limit"
    list_edge: ClassVar[str]  # "media" | "threads": the account's published posts
    text_field: ClassVar[str]  # "caption" | "text"
    default_quota: ClassVar[int]
    transient_subcodes: ClassVar[Mapping[int, float | None]] = {}
    #: Subcodes whose retry_after is the publishing-quota wait.
    quota_subcodes: ClassVar[frozenset[int]] = frozenset()

    def __init__(
        self,
        client: httpx.Client,
        *,
        api_url: str | None = None,
        api_version: str | None = None,
        poll_interval: float = 5.0,
        poll_timeout: float = 300.0,
        quota_retry_after: float = 3600.0,
        lookup_limit: int = 25,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._api_url = (api_url or self.default_api_url).rstrip("/")
        self._api_version = api_version or self.default_api_version
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout
        self._quota_retry_after = quota_retry_after
        self._lookup_limit = lookup_limit
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock

    # -- what each platform defines ---------------------------------------------------------

    @abstractmethod
    def _owner(self, account: AccountRef) -> str:
        """The Graph id whose edges are published to (IG user id, Threads user id or "me")."""

    @abstractmethod
    def _containers(self, request: PublishRequest) -> ContainerSpec:
        """The container parameters for this post."""

    # -- publish ----------------------------------------------------------------------------

    def may_be_public(self, checkpoint: Mapping[str, Any]) -> bool:
        """Once a container is saved its publish may have been sent; before, nothing is out."""
        return bool(checkpoint.get("container_id") or checkpoint.get("media_id"))

    def publish(self, request: PublishRequest) -> PublishResult:
        graph, owner = self._session(request.account)
        state: dict[str, Any] = dict(request.checkpoint)
        if state.get("media_id"):
            return PublishResult(str(state["media_id"]), url=state.get("permalink"))
        container = str(state.get("container_id") or "")
        status = ""
        if container:
            status, _ = self._saved_status(graph, container, for_lookup=False)
            if status == IN_PROGRESS:
                status = self._await_finished(graph, container)
            elif status in (ERROR, EXPIRED):
                # Never published (it failed, or expired unpublished): a new one is safe.
                log.info("%s: container %s is %s; making a new one", self.name, container, status)
                container, state = "", {}
            elif status not in (FINISHED, PUBLISHED):
                raise OutcomeUnknown(
                    f"{self.name}: the container {container} of an earlier try is "
                    f"{status or 'without a status'}; whether it was published cannot be told, "
                    "so it is not sent again: check the account"
                )
        if not container:
            container = self._create(graph, owner, request)
            state = {"container_id": container, "created_at": self._clock()}
            request.save_checkpoint(dict(state))
            status = self._await_finished(graph, container)
        if status == PUBLISHED:
            return self._published(graph, owner, request, state, container)
        return self._publish_container(graph, owner, request, state, container)

    def _session(self, account: AccountRef) -> tuple[GraphSession, str]:
        token = access_token(self.name, account)
        owner = self._owner(account)
        base = f"{self._api_url}/{self._api_version}"
        subcodes = dict(self.transient_subcodes)
        for subcode in self.quota_subcodes:
            subcodes[subcode] = self._quota_retry_after
        graph = GraphSession(self._client, self.name, base, token, transient_subcodes=subcodes)
        return graph, owner

    def _create(self, graph: GraphSession, owner: str, request: PublishRequest) -> str:
        spec = self._containers(request)
        children: list[str] = []
        for params in spec.children:
            child = self._new_container(graph, owner, params, "a carousel item")
            children.append(child)
        for child in children:
            # A carousel is built from finished items (both APIs say so for videos). Items are
            # not saved: one still processing at the timeout is made anew by the next try.
            if self._await_finished(graph, child, saved=False) != FINISHED:
                raise PermanentError(f"{self.name}: carousel item {child} was not usable")
        parent = dict(spec.parent)
        if children:
            parent["children"] = ",".join(children)
        return self._new_container(graph, owner, parent, "the container")

    def _new_container(
        self, graph: GraphSession, owner: str, params: Mapping[str, str], what: str
    ) -> str:
        """Create one container; an answer without its id is worth another try (a container
        nobody publishes stays invisible and expires)."""
        body = graph.post(f"{owner}/{self.create_edge}", params)
        container = _id_of(body)
        if container is None:
            raise TransientError(
                f"{self.name}: Graph created {what} but answered without its id; trying again"
            )
        return container

    def _status(self, graph: GraphSession, container: str) -> tuple[str, str]:
        body = graph.get(container, fields=f"{self.status_field},{self.detail_field}")
        status = str(body.get(self.status_field) or "").upper()
        detail = str(body.get(self.detail_field) or "")
        return status, detail

    def _saved_status(
        self, graph: GraphSession, container: str, *, for_lookup: bool
    ) -> tuple[str, str]:
        """The status of the container an earlier try saved; one that cannot be read is unknown."""
        try:
            return self._status(graph, container)
        except PermanentError as exc:
            reason = (
                f"{self.name}: the container {container} of an earlier try cannot be read "
                f"({exc.message}); whether it was published is unknown"
            )
            if for_lookup:
                raise LookupUnsupported(reason) from exc
            raise OutcomeUnknown(
                reason + ", so it is not sent again: check the account", http_status=exc.http_status
            ) from exc

    def _await_finished(self, graph: GraphSession, container: str, *, saved: bool = True) -> str:
        """Wait until the container is FINISHED (or already PUBLISHED); ERROR/EXPIRED raise.

        Still not finished at the timeout: StillProcessing when the container is `saved` (the
        next try carries on with it, spending no attempt), else a TransientError.
        """
        deadline = self._monotonic() + self._poll_timeout
        while True:
            status, detail = self._status(graph, container)
            if status in (FINISHED, PUBLISHED):
                return status
            if status == ERROR:
                raise PermanentError(
                    f"{self.name}: the media could not be processed: {detail or 'ERROR'} "
                    f"(container {container})"
                )
            if status == EXPIRED:
                raise TransientError(
                    f"{self.name}: container {container} expired before it was published; "
                    "the next try makes a new one"
                )
            if self._monotonic() >= deadline:
                if not saved:
                    raise TransientError(
                        f"{self.name}: carousel item {container} was still "
                        f"{status or 'unknown'} after {self._poll_timeout:g} s"
                    )
                raise StillProcessing(
                    f"{self.name}: container {container} was still {status or 'unknown'} after "
                    f"{self._poll_timeout:g} s; the next try carries on with it",
                    retry_after=max(self._poll_interval, STILL_PROCESSING_WAIT),
                )
            self._sleep(self._poll_interval)

    def _check_quota(self, graph: GraphSession, owner: str) -> None:
        try:
            body = graph.get(f"{owner}/{self.limit_edge}", fields="quota_usage,config")
        except PermanentError as exc:
            # Advisory only: the publish call enforces the quota itself.
            log.warning("%s: publishing limit not readable: %s", self.name, exc.message)
            return
        data = body.get("data")
        entry = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        usage = _number(entry.get("quota_usage"))
        config = entry.get("config")
        if not isinstance(config, dict):
            config = {}
        total = _number(config.get("quota_total")) or float(self.default_quota)
        duration = _number(config.get("quota_duration")) or 86400.0
        if usage is not None and usage >= total:
            raise RateLimited(
                f"{self.name}: the account has published {usage:g} of the {total:g} posts the "
                f"API allows in {duration / 3600:g} h; trying again later",
                retry_after=self._quota_retry_after,
            )

    def _publish_container(
        self,
        graph: GraphSession,
        owner: str,
        request: PublishRequest,
        state: dict[str, Any],
        container: str,
    ) -> PublishResult:
        self._check_quota(graph, owner)
        try:
            body = graph.post(f"{owner}/{self.publish_edge}", {"creation_id": container})
        except PermanentError:
            # Refused: perhaps because an earlier (or concurrent) try already published it.
            status, _ = self._status(graph, container)
            if status == PUBLISHED:
                return self._published(graph, owner, request, state, container)
            raise
        media_id = _id_of(body)
        if media_id is None:
            raise OutcomeUnknown(
                f"{self.name}: Graph accepted the publish of container {container} but answered "
                "without the media id; the post may be live, so it is not sent again: check the "
                "account"
            )
        state = {**state, "media_id": media_id}
        request.save_checkpoint(dict(state))
        permalink = self._permalink(graph, media_id)
        if permalink:
            request.save_checkpoint({**state, "permalink": permalink})
        return PublishResult(media_id, url=permalink, http_status=200)

    def _permalink(self, graph: GraphSession, media_id: str) -> str | None:
        """The post's URL, best effort: the post is out, so a failure here is not an error."""
        try:
            body = graph.get(media_id, fields="permalink")
        except PlatformError as exc:
            log.warning("%s: permalink of %s not readable: %s", self.name, media_id, exc.message)
            return None
        permalink = body.get("permalink")
        return str(permalink) if permalink else None

    def _published(
        self,
        graph: GraphSession,
        owner: str,
        request: PublishRequest,
        state: Mapping[str, Any],
        container: str,
        *,
        save: bool = True,
    ) -> PublishResult:
        """The result for a PUBLISHED container whose publish answer was lost.

        `save` keeps the media id found in the checkpoint (publish does; lookup only reads).
        """
        since = _number(state.get("created_at"))
        try:
            body = graph.get(
                f"{owner}/{self.list_edge}",
                fields=f"id,{self.text_field},timestamp,permalink",
                limit=self._lookup_limit,
            )
        except PermanentError as exc:
            log.warning("%s: recent posts not readable: %s", self.name, exc.message)
            body = {}
        wanted = comparable(request.text)
        matches = [
            item
            for item in _items(body.get("data"))
            if comparable(item.get(self.text_field)) == wanted
            and (
                since is None
                or (parse_time(item.get("timestamp")) or 0) >= since - CLOCK_SLACK_SECONDS
            )
        ]
        if len(matches) == 1:
            item = matches[0]
            permalink = str(item["permalink"]) if item.get("permalink") else None
            if save:
                request.save_checkpoint(
                    {**state, "media_id": str(item["id"]), "permalink": permalink}
                )
            return PublishResult(str(item["id"]), url=permalink)
        log.warning(
            "%s: container %s is published but its media id is not known (%d candidates)",
            self.name,
            container,
            len(matches),
        )
        return PublishResult(container)

    # -- lookup -----------------------------------------------------------------------------

    def lookup(self, request: PublishRequest) -> PublishResult | None:
        state = request.checkpoint
        if state.get("media_id"):
            return PublishResult(str(state["media_id"]), url=state.get("permalink"))
        container = state.get("container_id")
        if not container:
            # The container id is saved before anything can publish it: none, nothing published.
            return None
        graph, owner = self._session(request.account)
        status, _ = self._saved_status(graph, str(container), for_lookup=True)
        if status == PUBLISHED:
            return self._published(graph, owner, request, state, str(container), save=False)
        return None


def _id_of(body: Mapping[str, Any]) -> str | None:
    """The `id` of a Graph answer, None when it has none."""
    value = body.get("id")
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _items(data: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, Mapping) and item.get("id")]


# -- media ----------------------------------------------------------------------------------

_IMAGE_EXT = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".heic": "image/heic",
}
_VIDEO_EXT = {".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/mp4"}


def media_kind(item: Mapping[str, Any]) -> str | None:
    """ "image" or "video": the item's `kind`, else its MIME type, else its URL's extension."""
    kind = item.get("kind")
    if kind in ("image", "video"):
        return str(kind)
    mime = str(item.get("mime_type") or "")
    if mime.startswith(("image/", "video/")):
        return mime.split("/", 1)[0]
    extension = _extension(item)
    if extension in _IMAGE_EXT:
        return "image"
    if extension in _VIDEO_EXT:
        return "video"
    return None


def media_mime(item: Mapping[str, Any]) -> str | None:
    """The item's MIME type, or the one its URL's extension implies."""
    mime = item.get("mime_type")
    if mime:
        return str(mime).split(";", 1)[0].strip().lower()
    extension = _extension(item)
    return _IMAGE_EXT.get(extension) or _VIDEO_EXT.get(extension)


def _extension(item: Mapping[str, Any]) -> str:
    url = str(item.get("url") or "")
    try:
        path = httpx.URL(url).path
    except (httpx.InvalidURL, TypeError):
        return ""
    name = path.rsplit("/", 1)[-1]
    return ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""


def public_url(item: Mapping[str, Any]) -> str | None:
    """The item's http(s) URL (Meta fetches media itself), None if it has none."""
    url = item.get("url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return url
    return None


# -- metrics --------------------------------------------------------------------------------
#
# Reading a post's counts needs scopes publishing does not (pages_read_engagement and
# read_insights, instagram_manage_insights, threads_manage_insights). Graph answers a missing
# one with a permission code (10, 200-299), which `graph_error` makes NeedsAuth for publishing;
# for a metrics read a token refresh cannot add the scope, so `metrics_failure` makes it a
# PermanentError (the pulls of that post stop, and the reason is logged).


def metrics_failure(platform: str, exc: PlatformError, what: str) -> PlatformError:
    """The error to raise for a failed metrics read of `what` (a post, its insights)."""
    details = error_details(exc)
    if isinstance(exc, NeedsAuth) and details is not None and details.code in PERMISSION_CODES:
        return PermanentError(
            f"{exc.message}; the account's token may not read {what}: connect it again "
            "granting the insights permissions",
            http_status=exc.http_status,
        )
    return exc


def insights_values(body: Mapping[str, Any]) -> dict[str, int]:
    """`{metric name: value}` of a Graph /insights answer: {"data": [{"name", "values":
    [{"value"}]}]} (lifetime metrics), or {"total_value": {"value"}} (newer metrics)."""
    found: dict[str, int] = {}
    for entry in body.get("data") or ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        value: Any = None
        total = entry.get("total_value")
        if isinstance(total, Mapping):
            value = total.get("value")
        values = entry.get("values")
        if value is None and isinstance(values, list) and values:
            last = values[-1]
            value = last.get("value") if isinstance(last, Mapping) else None
        count = as_count(value)
        if count is not None:
            found[entry["name"]] = count
    return found
