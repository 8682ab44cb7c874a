"""One error shape everywhere, request ids, and no leaks on 500."""

from __future__ import annotations

import logging
from typing import Any

import falcon
import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from herald_api.app import create_app
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

from .conftest import Tenant, fields_of


def _assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["request_id"]


def test_malformed_json_is_400(client: TestClient) -> None:
    # When a body that is not JSON is posted
    result = client.simulate_post(
        "/v1/posts", body='{"content": "hi",', headers={"Content-Type": "application/json"}
    )

    # I expect 400 malformed_json
    assert result.status_code == 400
    _assert_error_shape(result.json, "malformed_json")


def test_an_empty_body_is_400(client: TestClient) -> None:
    result = client.simulate_post(
        "/v1/posts", body="", headers={"Content-Type": "application/json"}
    )

    assert result.status_code == 400
    assert result.json["error"]["code"] == "malformed_json"


def test_a_body_that_is_not_an_object_is_422(client: TestClient) -> None:
    result = client.simulate_post("/v1/posts", json=[1, 2])

    assert result.status_code == 422
    assert "body" in fields_of(result)


def test_wrong_content_type_is_415(client: TestClient) -> None:
    # When JSON is sent as text/plain
    result = client.simulate_post(
        "/v1/accounts", body='{"platform": "sandbox"}', headers={"Content-Type": "text/plain"}
    )

    # I expect 415 in the error shape
    assert result.status_code == 415
    _assert_error_shape(result.json, "unsupported_media_type")


def test_the_415_says_what_to_send(client: TestClient) -> None:
    # When JSON is sent as curl's -d sends it without a header
    result = client.simulate_post(
        "/v1/accounts",
        body='{"platform": "sandbox", "handle": "x"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    # I expect the answer to name what came and the header to add
    message = result.json["error"]["message"]
    assert result.status_code == 415
    assert "application/x-www-form-urlencoded" in message
    assert "-H 'Content-Type: application/json'" in message


def test_an_unknown_field_is_422_naming_it(client: TestClient) -> None:
    result = client.simulate_post(
        "/v1/accounts", json={"platform": "sandbox", "handle": "demo", "colour": "red"}
    )

    assert result.status_code == 422
    _assert_error_shape(result.json, "invalid_input")
    assert fields_of(result) == {"colour": "unknown field"}


def test_a_missing_field_is_422_naming_it(client: TestClient) -> None:
    result = client.simulate_post("/v1/accounts", json={"platform": "sandbox"})

    assert result.status_code == 422
    assert fields_of(result) == {"handle": "is required"}


def test_an_unknown_route_is_404_in_the_error_shape(client: TestClient) -> None:
    result = client.simulate_get("/v1/nothing-here")

    assert result.status_code == 404
    _assert_error_shape(result.json, "not_found")


def test_a_wrong_method_is_405_in_the_error_shape(anonymous: TestClient) -> None:
    result = anonymous.simulate_delete("/health")

    assert result.status_code == 405
    _assert_error_shape(result.json, "method_not_allowed")
    assert "GET" in result.headers["Allow"]


def test_the_request_id_is_echoed_sanitised(anonymous: TestClient) -> None:
    # Given a client request id with characters that have no place in a header or a log
    given = "abc-123<script>" + "x" * 100

    # When it is sent
    result = anonymous.simulate_get("/v1/posts", headers={"X-Request-ID": given})

    # I expect it back, cleaned and cut to 64 characters, in the header and the error
    expected = ("abc-123script" + "x" * 100)[:64]
    assert result.headers["X-Request-ID"] == expected
    assert result.json["error"]["request_id"] == expected


def test_a_request_id_is_made_when_none_is_given(anonymous: TestClient) -> None:
    first = anonymous.simulate_get("/health").headers["X-Request-ID"]
    second = anonymous.simulate_get("/health").headers["X-Request-ID"]

    assert first and second and first != second


class _ExplodingPlatforms(PlatformRegistry):
    """A registry whose adapters fail with an error carrying a secret."""

    def get(self, platform: str) -> Any:
        raise RuntimeError("password=hunter2 at /srv/secret.py line 12")


def test_an_unexpected_error_is_500_without_leaking(
    settings: Settings,
    engine: Engine,
    broker: Any,
    tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given an app whose platform validation blows up
    app: falcon.App = create_app(
        settings, engine=engine, broker=broker, platforms=_ExplodingPlatforms(engine)
    )
    client = TestClient(app, headers=tenant.headers)
    account = client.simulate_post("/v1/accounts", json={"platform": "sandbox", "handle": "d"})

    # When a post is created
    with caplog.at_level(logging.ERROR, logger="herald_api.errors"):
        result = client.simulate_post(
            "/v1/posts",
            json={"content": "hi", "account_ids": [account.json["id"]]},
            headers={"X-Request-ID": "req-500"},
        )

    # I expect a generic 500 with the request id, and the details only in the server's log
    assert result.status_code == 500
    _assert_error_shape(result.json, "internal_error")
    assert result.json["error"]["request_id"] == "req-500"
    assert "hunter2" not in result.text
    assert "Traceback" not in result.text
    assert "req-500" in caplog.text
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records)
