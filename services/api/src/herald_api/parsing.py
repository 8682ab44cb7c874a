"""Reading request bodies and query strings into pydantic models, with errors by field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from herald_api.errors import MalformedJson
from herald_common.errors import FieldError, InvalidInput, field_errors

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 1024 * 1024
#: No request body of the API nests more than a few levels; this leaves room and stays far
#: below the depth at which a parser's recursion would fail.
MAX_JSON_DEPTH = 64
NUL_REASON = "contains a NUL character (\\u0000), which cannot be stored"

_JSON_TYPES = ("application/json",)


def request_body(req: falcon.Request) -> bytes:
    """The request's raw body, read once (413 past MAX_BODY_BYTES) and kept on the context, so
    the idempotency check and the resource read the same bytes.

    A body sent with `Transfer-Encoding: chunked` has no Content-Length, and Falcon's
    `bounded_stream` reads such a body as empty; gunicorn decodes the chunks and ends the stream
    at the last one, so it is read from the stream itself, up to one byte past the limit.
    """
    cached = getattr(req.context, "raw_body", None)
    if cached is not None:
        return cached
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"the body may be at most {MAX_BODY_BYTES} bytes"
        )
    chunked = "chunked" in (req.get_header("Transfer-Encoding") or "").lower()
    stream = req.stream if chunked and req.content_length is None else req.bounded_stream
    raw = stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"the body may be at most {MAX_BODY_BYTES} bytes"
        )
    req.context.raw_body = raw
    return raw


def _json_bytes(req: falcon.Request) -> bytes:
    """The request's body, checked to be JSON: 415, 413 or 400 (malformed_json) otherwise."""
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in _JSON_TYPES:
        got = f"Content-Type: {media_type}" if media_type else "no Content-Type"
        if media_type == "application/x-www-form-urlencoded":
            got += " (what `curl -d` sends unless told otherwise)"
        raise falcon.HTTPUnsupportedMediaType(
            description=f"the body must be JSON sent with Content-Type: application/json; this "
            f"request has {got}: add the header (curl: -H 'Content-Type: application/json')"
        )
    raw = request_body(req)
    if not raw.strip():
        raise MalformedJson("the body is empty")
    return raw


def _loads(raw: bytes) -> Any:
    try:
        body = json.loads(raw)
    except RecursionError:
        # `[` a hundred thousand times deep: the parser's recursion, not the client's JSON.
        raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(str(exc)) from None
    _check_values(body)
    return body


def _check_values(body: Any) -> None:
    """Refuse what no column can store: a NUL character in any string (PostgreSQL's text
    cannot hold one), and nesting deeper than MAX_JSON_DEPTH; InvalidInput names the field."""
    stack: list[tuple[Any, str, int]] = [(body, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            if "\x00" in value:
                raise InvalidInput(FieldError(path or "body", NUL_REASON))
        elif isinstance(value, dict):
            for name, item in value.items():
                field = f"{path}.{name}" if path else str(name)
                if "\x00" in name:
                    raise InvalidInput(FieldError(path or "body", NUL_REASON))
                stack.append((item, field, depth + 1))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                stack.append((item, f"{path}.{index}" if path else str(index), depth + 1))


def parse_body(req: falcon.Request, model: type[M]) -> M:
    """The request's JSON body as `model`: 415, 413, 400 (malformed_json) or 422 otherwise."""
    raw = _json_bytes(req)
    _loads(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None


def parse_object(req: falcon.Request) -> dict[str, Any]:
    """The request's body as a JSON object, for a schema chosen by the route (a contract's)."""
    body = _loads(_json_bytes(req))
    if not isinstance(body, dict):
        raise MalformedJson("the body must be a JSON object")
    return body


def parse_query(req: falcon.Request, model: type[M]) -> M:
    """The query string as `model` (422 naming the parameter when it breaks a rule)."""
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None


def check_text(values: dict[str, Any]) -> None:
    """InvalidInput naming the first parameter (query or path) whose value holds a NUL."""
    for name, value in values.items():
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise InvalidInput(FieldError(name, NUL_REASON))
