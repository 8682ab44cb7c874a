"""Reading request bodies and query strings into pydantic models, with errors by field."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from herald_api.errors import MalformedJson
from herald_common.errors import InvalidInput, field_errors

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 1024 * 1024

_JSON_TYPES = ("application/json",)


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
    if req.content_length is not None and req.content_length > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"the body may be at most {MAX_BODY_BYTES} bytes"
        )
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise falcon.HTTPContentTooLarge(
            description=f"the body may be at most {MAX_BODY_BYTES} bytes"
        )
    if not raw.strip():
        raise MalformedJson("the body is empty")
    return raw


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(str(exc)) from None


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
