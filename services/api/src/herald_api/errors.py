"""The one place where Herald's error tree and Falcon's errors become HTTP responses.

Every error leaves in the same shape (schemas.ErrorResponse):

    {"error": {"code": "...", "message": "...", "fields": [...], "request_id": "..."}}
"""

from __future__ import annotations

import logging
from typing import Any

import falcon

from herald_common.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    HeraldError,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
    UpstreamRefused,
    UpstreamUnavailable,
)

log = logging.getLogger(__name__)

#: Herald's domain errors and the HTTP status each one means.
STATUS_OF: dict[type[HeraldError], int] = {
    NotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    Unauthorized: 401,
    Forbidden: 403,
    BadRequest: 400,
    TooManyRequests: 429,
    UpstreamRefused: 502,
    UpstreamUnavailable: 503,
}

#: Codes for Falcon's own errors (unknown route, wrong method, …).
_CODE_OF_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    502: "upstream_refused",
    503: "unavailable",
}

_FALLBACK_MESSAGE = {
    404: "no route {method} {path}",
    405: "{method} is not allowed on {path}",
}


class MalformedJson(falcon.HTTPBadRequest):
    """Raised when a request body is not valid JSON."""

    error_code = "malformed_json"

    def __init__(self, detail: str) -> None:
        super().__init__(
            title="Malformed JSON", description=f"the body is not valid JSON: {detail}"
        )


def error_body(
    req: falcon.Request, code: str, message: str, fields: list[FieldError] | None = None
) -> dict[str, Any]:
    """The JSON of an error response."""
    return {
        "error": {
            "code": code,
            "message": message,
            "fields": [_field_body(f) for f in fields or []],
            "request_id": getattr(req.context, "request_id", None),
        }
    }


def _field_body(error: FieldError) -> dict[str, str]:
    body = {"field": error.field, "reason": error.reason}
    if error.rule is not None:
        body["rule"] = error.rule
    if error.account_id is not None:
        body["account_id"] = error.account_id
    return body


def _handle_herald_error(
    req: falcon.Request, resp: falcon.Response, ex: HeraldError, params: dict[str, Any]
) -> None:
    status = next((s for cls, s in STATUS_OF.items() if isinstance(ex, cls)), 500)
    if status == 500:
        _handle_unexpected(req, resp, ex, params)
        return
    fields = ex.errors if isinstance(ex, InvalidInput) else None
    resp.status = status
    resp.media = error_body(req, ex.code, ex.message, fields)
    if isinstance(ex, Unauthorized):
        resp.set_header("WWW-Authenticate", "Bearer")
    if isinstance(ex, UpstreamUnavailable | TooManyRequests) and ex.retry_after:
        resp.set_header("Retry-After", str(max(1, round(ex.retry_after))))


def _handle_http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: dict[str, Any]
) -> None:
    status = ex.status_code
    code = getattr(ex, "error_code", None) or _CODE_OF_STATUS.get(status, "error")
    message = ex.description
    if not message and status in _FALLBACK_MESSAGE:
        message = _FALLBACK_MESSAGE[status].format(method=req.method, path=req.path)
    message = message or ex.title or "error"
    resp.status = status
    if ex.headers:
        resp.set_headers(ex.headers)
    resp.media = error_body(req, code, message)


def _handle_unexpected(
    req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
) -> None:
    request_id = getattr(req.context, "request_id", None)
    # The traceback stays in the log; the client only gets the request id to quote.
    log.error(
        "unhandled error on %s %s (request %s)", req.method, req.path, request_id, exc_info=ex
    )
    resp.status = 500
    resp.media = error_body(
        req, "internal_error", "internal server error; quote the request id when reporting it"
    )


def add_error_handlers(app: falcon.App) -> None:
    """Map every error to the one JSON shape. Falcon picks the handler of the nearest class."""
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(falcon.HTTPError, _handle_http_error)
    app.add_error_handler(HeraldError, _handle_herald_error)
