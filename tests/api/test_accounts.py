"""Accounts: create, validate settings, change, delete (canceling pending targets), sandbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from herald_common.db import session_scope
from herald_common.models import SandboxDelivery

from .conftest import Tenant, fields_of, future, iso


def test_create_and_get_an_account(client: TestClient) -> None:
    # When a sandbox account is connected
    created = client.simulate_post(
        "/v1/accounts",
        json={
            "platform": "sandbox",
            "handle": "demo",
            "external_id": "42",
            "settings": {"max_length": 280},
        },
    )

    # I expect it back, and in the list
    assert created.status_code == 201
    account = created.json
    assert (account["platform"], account["handle"], account["external_id"]) == (
        "sandbox",
        "demo",
        "42",
    )
    assert account["settings"] == {"max_length": 280}
    assert account["status"] == "active"
    assert created.headers["Location"] == f"/v1/accounts/{account['id']}"
    assert client.simulate_get(f"/v1/accounts/{account['id']}").json == account
    assert [a["id"] for a in client.simulate_get("/v1/accounts").json["data"]] == [account["id"]]


def test_an_unknown_platform_is_422(client: TestClient) -> None:
    result = client.simulate_post("/v1/accounts", json={"platform": "myspace", "handle": "tom"})

    assert result.status_code == 422
    assert set(fields_of(result)) == {"platform"}
    assert fields_of(result)["platform"].startswith("must be one of: ")
    assert "sandbox" in fields_of(result)["platform"]


def test_settings_are_checked_against_the_platform(client: TestClient) -> None:
    # When the settings break the sandbox's schema
    result = client.simulate_post(
        "/v1/accounts",
        json={
            "platform": "sandbox",
            "handle": "demo",
            "settings": {"max_length": 0, "fail": "sometimes", "colour": "red"},
        },
    )

    # I expect each broken setting named settings.<field>
    assert result.status_code == 422
    assert set(fields_of(result)) == {"settings.max_length", "settings.fail", "settings.colour"}
    assert fields_of(result)["settings.colour"] == "unknown field"


def test_a_blank_handle_is_422(client: TestClient) -> None:
    result = client.simulate_post("/v1/accounts", json={"platform": "sandbox", "handle": "  "})

    assert result.status_code == 422
    assert fields_of(result) == {"handle": "must not be empty"}


def test_patch_an_account(client: TestClient, make_account: Callable[..., dict[str, Any]]) -> None:
    # Given an account
    account = make_account()

    # When its handle and settings change
    result = client.simulate_patch(
        f"/v1/accounts/{account['id']}", json={"handle": "renamed", "settings": {"max_length": 10}}
    )

    # I expect both changed
    assert result.status_code == 200
    assert result.json["handle"] == "renamed"
    assert result.json["settings"] == {"max_length": 10}

    # And invalid settings are refused by field
    bad = client.simulate_patch(
        f"/v1/accounts/{account['id']}", json={"settings": {"latency_ms": -1}}
    )
    assert bad.status_code == 422
    assert "settings.latency_ms" in fields_of(bad)


def test_delete_cancels_the_accounts_pending_targets(
    client: TestClient,
    make_account: Callable[..., dict[str, Any]],
    make_post: Callable[..., dict[str, Any]],
    set_target: Callable[..., None],
) -> None:
    # Given two accounts, a post scheduled to both, and a second post already published to one
    first, second = make_account("first"), make_account("second")
    both = make_post([first["id"], second["id"]], scheduled_at=iso(future()))
    done = make_post([first["id"]], scheduled_at=iso(future()))
    set_target(done["targets"][0]["id"], status="published")

    # When the first account is deleted
    result = client.simulate_delete(f"/v1/accounts/{first['id']}")

    # I expect it gone from the API, its pending target canceled (version bumped), the other
    # account's target untouched, and the published target kept as it was
    assert result.status_code == 204
    assert client.simulate_get(f"/v1/accounts/{first['id']}").status_code == 404
    assert [a["id"] for a in client.simulate_get("/v1/accounts").json["data"]] == [second["id"]]
    post = client.simulate_get(f"/v1/posts/{both['id']}").json
    by_account = {t["account_id"]: t for t in post["targets"]}
    assert by_account[first["id"]]["status"] == "canceled"
    assert by_account[first["id"]]["error_kind"] == "account_deleted"
    assert by_account[first["id"]]["version"] == 2
    assert by_account[second["id"]]["status"] == "scheduled"
    assert by_account[second["id"]]["version"] == 1
    assert post["status"] == "scheduled"
    assert post["version"] == 2
    assert (
        client.simulate_get(f"/v1/posts/{done['id']}").json["targets"][0]["status"] == "published"
    )


def test_delete_of_the_only_account_cancels_the_post(
    client: TestClient,
    make_account: Callable[..., dict[str, Any]],
    make_post: Callable[..., dict[str, Any]],
) -> None:
    account = make_account()
    post = make_post([account["id"]], scheduled_at=iso(future()))

    client.simulate_delete(f"/v1/accounts/{account['id']}")

    assert client.simulate_get(f"/v1/posts/{post['id']}").json["status"] == "canceled"
    # And rescheduling cannot bring a deleted account back
    again = client.simulate_put(
        f"/v1/posts/{post['id']}/schedule", json={"scheduled_at": iso(future(days=2))}
    )
    assert again.status_code == 409


def test_a_deleted_account_cannot_be_used(
    client: TestClient, make_account: Callable[..., dict[str, Any]]
) -> None:
    account = make_account()
    client.simulate_delete(f"/v1/accounts/{account['id']}")

    result = client.simulate_post(
        "/v1/posts", json={"content": "hi", "account_ids": [account["id"]]}
    )

    assert result.status_code == 422
    assert fields_of(result) == {"account_ids.0": "no such account"}


def test_sandbox_posts_lists_what_the_sandbox_received(
    client: TestClient, engine: Engine, tenant: Tenant, make_account: Callable[..., dict[str, Any]]
) -> None:
    # Given an account and two deliveries the sandbox platform recorded for it
    account = make_account()
    with session_scope(engine) as session:
        for n in (1, 2):
            session.add(
                SandboxDelivery(
                    tenant_id=tenant.id,
                    account_id=account["id"],
                    idempotency_key=f"key-{n}",
                    accepted_key=f"key-{n}",
                    outcome="accepted",
                    content=f"post {n}",
                    created_at=future(seconds=n),
                )
            )

    # When they are listed
    result = client.simulate_get(f"/v1/accounts/{account['id']}/sandbox-posts")

    # I expect both, newest first
    assert result.status_code == 200
    assert [d["content"] for d in result.json["data"]] == ["post 2", "post 1"]


def test_sandbox_posts_of_another_tenant_is_404(
    other_client: TestClient, make_account: Callable[..., dict[str, Any]]
) -> None:
    account = make_account()

    result = other_client.simulate_get(f"/v1/accounts/{account['id']}/sandbox-posts")

    assert result.status_code == 404
