"""Reading request bodies and query strings into pydantic models, with errors by field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import falcon
from pydantic import BaseModel, ValidationError

from herald_api.errors import MalformedJson
from herald_common.errors import FieldError, InvalidInput

M = TypeVar("M", bound=BaseModel)

MAX_BODY_BYTES = 1024 * 1024

_JSON_TYPES = ("application/json",)


def _items(count: object) -> str:
    return f"{count} item" if count == 1 else f"{count} items"


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "is required"
    ctx = error.get("ctx") or {}
    if kind == "string_too_short":
        return f"must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"must have at least {_items(ctx.get('min_length'))}"
    if kind == "too_long":
        return f"must have at most {_items(ctx.get('max_length'))}"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    for prefix, plain in (
        ("Input should", "must"),
        ("String should", "must"),
        ("List should", "must"),
    ):
        if message.startswith(prefix):
            return plain + message[len(prefix) :]
    return message[:1].lower() + message[1:]


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Pydantic's errors as FieldErrors with dotted paths (`account_ids.1`) and plain reasons."""
    errors = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        field = ".".join(p for p in (prefix, path) if p) or "body"
        errors.append(FieldError(field, _reason(error)))
    return errors


def parse_body(req: falcon.Request, model: type[M]) -> M:
    """The request's JSON body as `model`: 415, 413, 400 (malformed_json) or 422 otherwise."""
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in _JSON_TYPES:
        raise falcon.HTTPUnsupportedMediaType(
            description="send the body as JSON with Content-Type: application/json"
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
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(str(exc)) from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None


def parse_query(req: falcon.Request, model: type[M]) -> M:
    """The query string as `model` (422 naming the parameter when it breaks a rule)."""
    try:
        return model.model_validate(dict(req.params))
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None
