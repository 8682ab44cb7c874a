"""The OpenAPI document is generated from the routing table, and /docs renders it."""

from __future__ import annotations

import falcon
from falcon.testing import TestClient

from herald_api.routes import build_routes

EXPECTED = {
    "/health": {"get"},
    "/ready": {"get"},
    "/openapi.json": {"get"},
    "/docs": {"get"},
    "/metrics": {"get"},
    "/v1/admin/health": {"get"},
    "/v1/admin/queues": {"get"},
    "/v1/admin/queues/{name}": {"get", "delete"},
    "/v1/admin/queues/{name}/retry-failed": {"post"},
    "/v1/admin/queues/{name}/actions": {"post"},
    "/v1/accounts": {"get", "post"},
    "/v1/accounts/{account_id}": {"get", "patch", "delete"},
    "/v1/accounts/{account_id}/sandbox-posts": {"get"},
    "/v1/accounts/{account_id}/refresh": {"post"},
    "/v1/accounts/connect/{platform}": {"get", "post"},
    "/v1/accounts/connect/{platform}/callback": {"get"},
    "/v1/admin/refresh-tokens": {"post"},
    "/v1/posts": {"get", "post"},
    "/v1/posts/{post_id}": {"get", "patch", "delete"},
    "/v1/posts/{post_id}/schedule": {"put"},
    "/v1/posts/{post_id}/publish": {"post"},
    "/v1/posts/{post_id}/cancel": {"post"},
    "/v1/posts/{post_id}/retry": {"post"},
    "/v1/posts/{post_id}/targets/{target_id}/resolve": {"post"},
    "/v1/jobs": {"get"},
    "/v1/jobs/{job_id}": {"get"},
    "/v1/admin/test-jobs/{job_name}": {"post"},
    "/v1/brands": {"get", "post"},
    "/v1/brands/{brand_id}": {"get", "patch", "delete"},
    "/v1/brands/{brand_id}/generate": {"post"},
    "/v1/posts/{post_id}/regenerate": {"post"},
    "/v1/posts/{post_id}/submit": {"post"},
    "/v1/posts/{post_id}/approve": {"post"},
    "/v1/posts/{post_id}/reject": {"post"},
    "/v1/posts/{post_id}/approvals": {"get"},
    "/v1/webhooks/signing-key": {"get"},
    "/v1/webhooks": {"get", "post"},
    "/v1/webhooks/{webhook_id}": {"get", "patch", "delete"},
    "/v1/webhooks/{webhook_id}/deliveries": {"get"},
    "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/resend": {"post"},
    "/v1/images": {"get", "post"},
    "/v1/images/{image_id}": {"get", "delete"},
    "/v1/images/{image_id}/content": {"get"},
    "/media/images/{token}": {"get"},
    "/v1/posts/{post_id}/media": {"post"},
    "/v1/analytics": {"get"},
    "/v1/analytics/pull": {"post"},
    "/v1/posts/{post_id}/analytics": {"get"},
    "/assets/{name}": {"get"},
    "/v1/admin/tenants": {"get", "post"},
    "/v1/admin/keys": {"get", "post"},
    "/v1/admin/keys/{key_id}/revoke": {"post"},
}


def _resolve(document: dict, ref: str) -> dict:
    assert ref.startswith("#/components/schemas/")
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_openapi_lists_every_route(anonymous: TestClient) -> None:
    # When the document is fetched
    result = anonymous.simulate_get("/openapi.json")

    # I expect OpenAPI 3.1 with exactly the served routes and methods
    assert result.status_code == 200
    document = result.json
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Herald API"
    assert {path: set(item) for path, item in document["paths"].items()} == EXPECTED
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_documents_body_success_and_errors(anonymous: TestClient) -> None:
    document = anonymous.simulate_get("/openapi.json").json
    operation_ids = set()
    for path, item in document["paths"].items():
        for method, op in item.items():
            operation_ids.add(op["operationId"])
            responses = op["responses"]
            assert any(code.startswith("2") for code in responses), (path, method)
            public = op.get("security") == []
            assert ("401" in responses) is not public, (path, method)
            if "{" in path:
                assert "404" in responses, (path, method)
            if "requestBody" in op:
                for code in ("400", "415", "422"):
                    assert code in responses, (path, method, code)
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert _resolve(document, ref)["additionalProperties"] is False
            for code, response in responses.items():
                if code.startswith("4"):
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorResponse"), (path, method, code)
    assert len(operation_ids) == sum(len(item) for item in document["paths"].values())


def test_specific_operations(anonymous: TestClient) -> None:
    paths = anonymous.simulate_get("/openapi.json").json["paths"]

    create = paths["/v1/posts"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PostCreate"
    )
    assert "201" in create["responses"]
    assert "409" in paths["/v1/posts/{post_id}/cancel"]["post"]["responses"]
    assert "204" in paths["/v1/posts/{post_id}"]["delete"]["responses"]
    listing = {p["name"]: p for p in paths["/v1/posts"]["get"]["parameters"]}
    assert set(listing) == {"status", "limit", "cursor"}
    assert listing["limit"]["schema"]["maximum"] == 100


def test_docs_renders_the_document(anonymous: TestClient) -> None:
    result = anonymous.simulate_get("/docs")

    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    assert 'spec-url="/openapi.json"' in result.text


def test_the_routing_table_is_what_the_app_serves(
    app: falcon.App, engine, broker, platforms, settings
) -> None:
    # Every declared operation has a responder and vice versa (create_app checks it on start);
    # here: the table has one entry per path, matching the document.
    routes = build_routes(engine=engine, broker=broker, platforms=platforms, settings=settings)
    assert {r.path: {op.method for op in r.operations} for r in routes} == EXPECTED
