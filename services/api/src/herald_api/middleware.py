"""Falcon middleware: request ids, API-key authentication, and request metrics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Collection
from typing import Any

import falcon

from herald_api.auth import ApiKeys, bearer_token
from herald_api.parsing import check_text
from herald_common.errors import Forbidden
from herald_common.logs import REQUEST_ID
from herald_common.metrics import HTTP_DURATION, HTTP_REQUESTS

_UNSAFE = re.compile(r"[^A-Za-z0-9._:\-]")
MAX_REQUEST_ID_LENGTH = 64
#: Every route under this prefix takes admin keys only.
ADMIN_PREFIX = "/v1/admin/"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def sanitize_request_id(value: str | None) -> str | None:
    """A client's request id with anything but [A-Za-z0-9._:-] dropped, cut to 64 characters."""
    if not value:
        return None
    cleaned = _UNSAFE.sub("", value)[:MAX_REQUEST_ID_LENGTH]
    return cleaned or None


class RequestIdMiddleware:
    """Gives every request an id (the client's X-Request-ID, or a new one) and echoes it; while
    the request runs, its log lines and the messages it sends carry it (REQUEST_ID)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = sanitize_request_id(req.get_header("X-Request-ID")) or (
            uuid.uuid4().hex
        )
        req.context.request_id_token = REQUEST_ID.set(req.context.request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            resp.set_header("X-Request-ID", request_id)
        token = getattr(req.context, "request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)


class TextParamsMiddleware:
    """Refuses a NUL character in a path id or a query parameter (422 naming it) before any
    resource puts it in a query: PostgreSQL's text cannot hold one, and would answer 500."""

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        check_text(params)
        check_text(req.params)


class AuthMiddleware:
    """Requires a valid API key on every route but the public ones; puts the tenant on context."""

    def __init__(self, keys: ApiKeys, public_paths: Collection[str]) -> None:
        self._keys = keys
        self._public_paths = frozenset(public_paths)

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        # No resource means no route: let Falcon answer 404 without asking for a key.
        if resource is None or req.uri_template in self._public_paths:
            return
        principal = self._keys.authenticate(bearer_token(req.get_header("Authorization")))
        if (req.uri_template or "").startswith(ADMIN_PREFIX) and not principal.is_admin:
            raise Forbidden(f"only an admin API key may use {ADMIN_PREFIX}")
        req.context.tenant_id = principal.tenant_id
        req.context.is_admin = principal.is_admin
        req.context.api_key_id = principal.key_id
        req.context.principal = principal


class MetricsMiddleware:
    """Counts every request by route template, method and status, and times it.

    The route is Falcon's URI template (`/v1/posts/{post_id}`), never the path, so the labels
    stay bounded; a request no route matched counts as `unmatched`.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "started", None)
        route = req.uri_template or "unmatched"
        method = req.method if req.method in _METHODS else "OTHER"
        HTTP_REQUESTS.labels(route, method, resp.status_code).inc()
        if started is not None:
            HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)
