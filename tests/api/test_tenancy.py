"""Every query is scoped to the caller's tenant: another tenant's rows are simply not there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from falcon.testing import TestClient

from .conftest import fields_of, future, iso


@pytest.fixture
def theirs(
    make_account: Callable[..., dict[str, Any]], make_post: Callable[..., dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An account and a scheduled post of the first tenant."""
    account = make_account()
    return account, make_post([account["id"]], scheduled_at=iso(future()))


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"content": "mine now"}),
        ("DELETE", "", None),
        ("PUT", "/schedule", {"scheduled_at": "2031-01-01T00:00:00Z"}),
        ("POST", "/publish", None),
        ("POST", "/cancel", None),
        ("POST", "/retry", None),
    ],
)
def test_another_tenants_post_is_404(
    other_client: TestClient,
    client: TestClient,
    theirs: tuple[dict[str, Any], dict[str, Any]],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    # Given the first tenant's post
    _, post = theirs

    # When the other tenant touches it
    result = other_client.simulate_request(method, f"/v1/posts/{post['id']}{suffix}", json=body)

    # I expect 404, and the post unchanged for its owner
    assert result.status_code == 404
    assert result.json["error"]["code"] == "not_found"
    unchanged = client.simulate_get(f"/v1/posts/{post['id']}").json
    assert unchanged["version"] == post["version"]
    assert unchanged["content"] == post["content"]


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/sandbox-posts")]
)
def test_another_tenants_account_is_404(
    other_client: TestClient,
    client: TestClient,
    theirs: tuple[dict[str, Any], dict[str, Any]],
    method: str,
    suffix: str,
) -> None:
    account, _ = theirs
    body = {"handle": "stolen"} if method == "PATCH" else None

    result = other_client.simulate_request(
        method, f"/v1/accounts/{account['id']}{suffix}", json=body
    )

    assert result.status_code == 404
    assert client.simulate_get(f"/v1/accounts/{account['id']}").json["handle"] == "demo"


def test_another_tenants_rows_are_not_listed(
    other_client: TestClient, theirs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    assert other_client.simulate_get("/v1/posts").json == {"data": [], "next_cursor": None}
    assert other_client.simulate_get("/v1/accounts").json == {"data": []}


def test_another_tenants_account_id_in_account_ids_is_422(
    other_client: TestClient, theirs: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    # Given the other tenant with an account of its own
    account, _ = theirs
    own = other_client.simulate_post("/v1/accounts", json={"platform": "sandbox", "handle": "o"})

    # When it names the first tenant's account in a post
    result = other_client.simulate_post(
        "/v1/posts", json={"content": "hi", "account_ids": [own.json["id"], account["id"]]}
    )

    # I expect 422 on that index, as if the account did not exist
    assert result.status_code == 422
    assert fields_of(result) == {"account_ids.1": "no such account"}
