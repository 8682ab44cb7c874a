"""Listing posts: keyset pagination and the status filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcon.testing import TestClient

from .conftest import fields_of, future, iso


def test_three_pages_without_duplicates(
    client: TestClient,
    make_account: Callable[..., dict[str, Any]],
    make_post: Callable[..., dict[str, Any]],
) -> None:
    # Given seven posts
    account = make_account()
    created = [make_post([account["id"]], content=f"post {n}")["id"] for n in range(7)]

    # When they are read three at a time
    pages, cursor = [], None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        result = client.simulate_get("/v1/posts", params=params)
        assert result.status_code == 200
        pages.append([p["id"] for p in result.json["data"]])
        cursor = result.json["next_cursor"]
        if cursor is None:
            break

    # I expect pages of 3, 3 and 1, newest first, each post exactly once
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [pid for page in pages for pid in page] == list(reversed(created))


def test_a_full_last_page_has_no_next_cursor(
    client: TestClient,
    make_account: Callable[..., dict[str, Any]],
    make_post: Callable[..., dict[str, Any]],
) -> None:
    account = make_account()
    for _ in range(2):
        make_post([account["id"]])

    result = client.simulate_get("/v1/posts", params={"limit": "2"})

    assert len(result.json["data"]) == 2
    assert result.json["next_cursor"] is None


def test_filter_by_status(
    client: TestClient,
    make_account: Callable[..., dict[str, Any]],
    make_post: Callable[..., dict[str, Any]],
) -> None:
    # Given a draft and a scheduled post
    account = make_account()
    draft = make_post([account["id"]])
    scheduled = make_post([account["id"]], scheduled_at=iso(future()))

    # When each status is asked for
    drafts = client.simulate_get("/v1/posts", params={"status": "draft"}).json["data"]
    planned = client.simulate_get("/v1/posts", params={"status": "scheduled"}).json["data"]
    published = client.simulate_get("/v1/posts", params={"status": "published"}).json["data"]

    # I expect only the posts in it, with their targets
    assert [p["id"] for p in drafts] == [draft["id"]]
    assert [p["id"] for p in planned] == [scheduled["id"]]
    assert planned[0]["targets"][0]["status"] == "scheduled"
    assert "attempts" not in planned[0]["targets"][0]
    assert published == []


def test_bad_query_parameters_are_422(client: TestClient) -> None:
    assert "status" in fields_of(client.simulate_get("/v1/posts", params={"status": "lost"}))
    assert "limit" in fields_of(client.simulate_get("/v1/posts", params={"limit": "0"}))
    assert "limit" in fields_of(client.simulate_get("/v1/posts", params={"limit": "101"}))
    assert "limit" in fields_of(client.simulate_get("/v1/posts", params={"limit": "many"}))
    result = client.simulate_get("/v1/posts", params={"cursor": "garbage!"})
    assert result.status_code == 422
    assert fields_of(result) == {"cursor": "is not a cursor this API gave out"}
