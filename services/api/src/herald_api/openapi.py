"""The OpenAPI 3.1 document, generated from the routing table and the pydantic models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from herald_api import __version__
from herald_api.routing import Operation, Route
from herald_api.schemas import ErrorResponse

_REF = "#/components/schemas/{model}"
_ERROR_REF = {"$ref": _REF.format(model=ErrorResponse.__name__)}
_ERROR_TEXT = {
    400: "Malformed JSON body (`malformed_json`), or a request that cannot be carried out as "
    "sent, such as an expired connect link (`bad_request`).",
    401: "Missing, invalid or revoked API key (`unauthorized`).",
    403: "The API key may not do this (`forbidden`).",
    404: "No such resource for this tenant (`not_found`).",
    409: "The resource's state forbids the change (`conflict`).",
    413: "The body is too large.",
    415: "The body is not `application/json`.",
    422: "The input breaks a rule; `fields` names each one (`invalid_input`).",
    429: "Over a limit: the API key's request rate, or the tenant's jobs in flight on a queue "
    "(`too_many_requests`); see Retry-After.",
    500: "Unexpected error; quote the request id (`internal_error`).",
    502: "The platform refused Herald's own request: check its app settings (`upstream_refused`).",
    503: "A dependency (the database, the broker, a platform) is not ready; see Retry-After.",
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: the same key with the same request gets the first "
    "answer again (with `Idempotent-Replayed: true`) for 24 hours; with another request it is "
    "a 422, and while the first is still running a 409. Keys are the tenant's own.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_PATH_PARAM = re.compile(r"{(\w+)}")


def _models(routes: list[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    seen: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {
        (ErrorResponse, "serialization"): None
    }
    for route in routes:
        for op in route.operations:
            if op.body is not None:
                seen[(op.body, "validation")] = None
            if op.query is not None:
                seen[(op.query, "validation")] = None
            if op.response is not None:
                seen[(op.response, "serialization")] = None
    return list(seen)


def _error_codes(route: Route, op: Operation) -> list[int]:
    codes = set(op.errors) | {500}
    if not op.public:
        codes |= {401, 429}
        if op.method == "post":
            codes |= {409, 422}  # Idempotency-Key: still running, or used for another request
    if _PATH_PARAM.search(route.path):
        codes.add(404)
    if op.body is not None:
        codes |= {400, 413, 415, 422}
    if op.query is not None:
        codes.add(422)
    return sorted(codes)


def _operation(
    route: Route,
    op: Operation,
    refs: Mapping[tuple[Any, JsonSchemaMode], Any],
    defs: dict[str, Any],
) -> dict[str, Any]:
    suffix = f"_{route.suffix}" if route.suffix else ""
    doc: dict[str, Any] = {
        "operationId": f"{type(route.resource).__name__}_{op.method}{suffix}",
        "summary": op.summary,
        "tags": [route.tag],
    }
    if op.description:
        doc["description"] = op.description
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            # Ids are UUIDs; names (a platform, a queue, a job name) and tokens are not.
            "schema": {"type": "string", "format": "uuid"}
            if name.endswith("_id")
            else {"type": "string"},
        }
        for name in _PATH_PARAM.findall(route.path)
    ]
    if op.query is not None:
        query_schema = defs[op.query.__name__]
        required = set(query_schema.get("required", []))
        for name, schema in query_schema["properties"].items():
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            param["schema"] = schema
            if "description" in schema:
                param["description"] = schema["description"]
            parameters.append(param)
    if op.method == "post" and not op.public:
        parameters.append(_IDEMPOTENCY_KEY)
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    responses: dict[str, Any] = {}
    if op.status == 204:
        responses["204"] = {"description": "Done; no content."}
    elif op.response is not None:
        responses[str(op.status)] = {
            "description": op.summary,
            "content": {op.media_type: {"schema": refs[(op.response, "serialization")]}},
        }
    else:
        responses[str(op.status)] = {
            "description": op.summary,
            "content": {op.media_type: {"schema": {}}},
        }
    for code in _error_codes(route, op):
        schema = refs[(op.response, "serialization")] if code == 503 and op.response else _ERROR_REF
        responses[str(code)] = {
            "description": _ERROR_TEXT[code],
            "content": {"application/json": {"schema": schema}},
        }
    doc["responses"] = responses
    if op.public:
        doc["security"] = []
    return doc


def build_document(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes."""
    refs, top = models_json_schema(_models(routes), ref_template=_REF)
    defs: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, Any] = {}
    for route in routes:
        item = paths.setdefault(route.path, {})
        for op in route.operations:
            item[op.method] = _operation(route, op, refs, defs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald API",
            "version": __version__,
            "description": (
                "Schedule and publish social-media posts. Every route but /health, /ready, "
                "/openapi.json and /docs needs `Authorization: Bearer <API key>`. Errors always "
                "have the shape of `ErrorResponse`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "hrld_…"}
            },
        },
        "security": [{"bearerAuth": []}],
        "tags": [{"name": name} for name in dict.fromkeys(r.tag for r in routes)],
    }
