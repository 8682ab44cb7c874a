"""A person resolves a target left in `unknown`: published (with its URL), not published, or retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from falcon.testing import TestClient
from sqlalchemy import text

from .conftest import fields_of

UNKNOWN = {
    "status": "unknown",
    "error_kind": "unknown",
    "error": "the worker died; x gives no way to ask whether the post went out",
    "attempt_count": 1,
}


@pytest.fixture
def unknown_target(
    make_account: Callable[..., dict[str, Any]],
    make_post: Callable[..., dict[str, Any]],
    set_target: Callable[..., None],
) -> tuple[str, str]:
    """A post with one target in unknown and one published: (post id, unknown target id)."""
    first, second = make_account("one"), make_account("two")
    post = make_post([first["id"], second["id"]], publish_now=True)
    unknown, published = (t["id"] for t in post["targets"])
    set_target(unknown, **UNKNOWN)
    set_target(published, status="published", platform_post_id="p2")
    return post["id"], unknown


def _resolve(client: TestClient, post_id: str, target_id: str, **body: Any) -> Any:
    return client.simulate_post(f"/v1/posts/{post_id}/targets/{target_id}/resolve", json=body)


def test_marking_it_published_keeps_the_url_and_settles_the_post(client, unknown_target):
    post_id, target_id = unknown_target

    # When a person found the post and gives its URL
    result = _resolve(
        client,
        post_id,
        target_id,
        outcome="published",
        platform_url="https://x.com/acme/status/1",
        note="found it on the profile",
    )

    # Then the target is published with that URL, and so is the whole post
    assert result.status_code == 200, result.json
    target = next(t for t in result.json["targets"] if t["id"] == target_id)
    assert (target["status"], target["platform_url"]) == (
        "published",
        "https://x.com/acme/status/1",
    )
    assert target["error"] == "marked published by a person (found it on the profile)"
    assert result.json["status"] == "published"


def test_not_published_leaves_it_failed(client, unknown_target):
    post_id, target_id = unknown_target

    result = _resolve(client, post_id, target_id, outcome="not_published")

    assert result.status_code == 200, result.json
    target = next(t for t in result.json["targets"] if t["id"] == target_id)
    assert (target["status"], target["error_kind"]) == ("failed", "resolved")
    assert result.json["status"] == "partially_published"


def test_retry_puts_it_back_on_the_schedule_now(client, unknown_target):
    post_id, target_id = unknown_target

    result = _resolve(client, post_id, target_id, outcome="retry")

    assert result.status_code == 200, result.json
    target = next(t for t in result.json["targets"] if t["id"] == target_id)
    assert (target["status"], target["attempt_count"], target["error"]) == ("scheduled", 0, None)
    assert result.json["status"] == "scheduled"


def test_published_needs_a_url_or_an_id(client, unknown_target):
    post_id, target_id = unknown_target

    result = _resolve(client, post_id, target_id, outcome="published")

    assert result.status_code == 422
    assert "platform_url" in fields_of(result)
    # And nothing moved
    post = client.simulate_get(f"/v1/posts/{post_id}").json
    assert next(t for t in post["targets"] if t["id"] == target_id)["status"] == "unknown"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "maybe"}, "outcome"),
        ({"outcome": "published", "platform_url": "ftp://x"}, "platform_url"),
        ({"outcome": "retry", "platform_url": "https://x.com/1"}, "platform_url"),
    ],
)
def test_bad_answers_are_422(client, unknown_target, body, field):
    post_id, target_id = unknown_target
    result = _resolve(client, post_id, target_id, **body)
    assert result.status_code == 422
    assert field in fields_of(result)


def test_only_an_unknown_target_can_be_resolved(client, unknown_target):
    post_id, target_id = unknown_target
    assert _resolve(client, post_id, target_id, outcome="not_published").status_code == 200

    # When it is resolved a second time
    again = _resolve(client, post_id, target_id, outcome="retry")

    # Then 409, saying what state it is in
    assert again.status_code == 409
    assert "is failed" in again.json["error"]["message"]


def test_another_tenants_target_is_404(other_client, unknown_target):
    post_id, target_id = unknown_target
    result = _resolve(other_client, post_id, target_id, outcome="retry")
    assert result.status_code == 404


def test_a_target_of_another_post_is_404(client, unknown_target, make_account, make_post):
    _, target_id = unknown_target
    other = make_post([make_account("three")["id"]])
    result = _resolve(client, other["id"], target_id, outcome="retry")
    assert result.status_code == 404


def test_retry_leaves_unknown_targets_to_be_resolved(client, unknown_target):
    post_id, _ = unknown_target

    result = client.simulate_post(f"/v1/posts/{post_id}/retry")

    assert result.status_code == 409
    assert "1 in unknown need resolving one by one" in result.json["error"]["message"]


def test_resolving_forgets_what_the_lost_try_left(client, unknown_target, set_target, engine):
    # Given the unknown target's lost try left a checkpoint (a container id)
    post_id, target_id = unknown_target
    set_target(target_id, checkpoint={"container_id": "c-1"})

    # When a person says it did not go out and asks to send it again
    assert _resolve(client, post_id, target_id, outcome="retry").status_code == 200

    # Then the next try starts afresh
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT checkpoint FROM targets WHERE id = :id"), {"id": target_id}
        ).scalar_one()
    assert stored in ({}, "{}")


def test_an_edit_is_refused_while_a_lost_try_may_have_published(
    client, make_account, make_post, set_target
):
    # Given a target retrying after a try that left work on the platform
    post = make_post([make_account()["id"]], publish_now=True)
    [target] = post["targets"]
    set_target(target["id"], status="retrying", checkpoint={"container_id": "c-9"})

    # When the text is changed
    result = client.simulate_patch(f"/v1/posts/{post['id']}", json={"content": "Fixed typo"})

    # Then 409 says why, and the text is unchanged
    assert result.status_code == 409
    assert "may already have published" in result.json["error"]["message"]
    assert client.simulate_get(f"/v1/posts/{post['id']}").json["content"] == "Hello from Herald"


def test_an_edit_without_a_lost_try_goes_through(client, make_account, make_post, set_target):
    post = make_post([make_account()["id"]], publish_now=True)
    set_target(post["targets"][0]["id"], status="retrying")

    result = client.simulate_patch(f"/v1/posts/{post['id']}", json={"content": "Fixed typo"})

    assert result.status_code == 200
    assert result.json["content"] == "Fixed typo"
