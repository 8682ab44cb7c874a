"""Brands: create, list, read, change and delete, each rule's 422 naming its field, and one
tenant never seeing another's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from falcon.testing import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine

from herald_common.db import session_scope
from herald_common.models import Post

from .conftest import fields_of

MakeAccount = Callable[..., dict[str, Any]]

FULL = {
    "name": "Bean There Coffee",
    "description": "A neighbourhood roastery.",
    "tone": "warm and playful",
    "topics": ["home brewing", "latte art"],
    "hashtags": ["coffee", "#BeanThere", "#coffee"],
    "colors": {"primary": "#6F4E37", "background": "#fffaf0"},
    "fonts": {"heading": "Playfair Display", "body": "Inter"},
    "timezone": "Europe/Paris",
    "requires_approval": True,
    "approvers": [
        {"name": "Ana", "email": "ana@example.com"},
        {"name": "Bo", "phone": "+15551234567"},
    ],
    "notification_type": "both",
}


def create(client: TestClient, **body: Any) -> dict[str, Any]:
    result = client.simulate_post("/v1/brands", json={"name": "Acme", **body})
    assert result.status_code == 201, result.json
    return result.json


def test_create_a_brand_with_every_field(client: TestClient, make_account: MakeAccount) -> None:
    # Given an account of the tenant
    account = make_account()

    # When a brand is created with every field
    result = client.simulate_post(
        "/v1/brands", json={**FULL, "default_account_ids": [account["id"]]}
    )

    # Then it is stored as given, hashtags normalised (each once, with #), colours lower-cased
    assert result.status_code == 201, result.json
    brand = result.json
    assert result.headers["Location"] == f"/v1/brands/{brand['id']}"
    assert brand["hashtags"] == ["#coffee", "#BeanThere"]
    assert brand["colors"] == {"primary": "#6f4e37", "background": "#fffaf0"}
    assert brand["fonts"] == {"heading": "Playfair Display", "body": "Inter"}
    assert brand["approvers"] == [
        {"name": "Ana", "email": "ana@example.com"},
        {"name": "Bo", "phone": "+15551234567"},
    ]
    assert brand["default_account_ids"] == [account["id"]]
    assert (brand["timezone"], brand["notification_type"], brand["version"]) == (
        "Europe/Paris",
        "both",
        1,
    )
    assert client.simulate_get(f"/v1/brands/{brand['id']}").json == brand


def test_a_brand_needs_only_a_name(client: TestClient) -> None:
    brand = create(client)

    assert brand["timezone"] == "UTC"
    assert (brand["topics"], brand["hashtags"], brand["colors"], brand["approvers"]) == (
        [],
        [],
        {},
        [],
    )
    assert (brand["requires_approval"], brand["notification_type"]) == (False, "email")


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "  "}, "name", "must not be blank"),
        ({"colors": {"primary": "brown"}}, "colors.primary", "#rrggbb"),
        ({"colors": {"accent": "#12345"}}, "colors.accent", "#rrggbb"),
        ({"colors": {"shadow": "#123456"}}, "colors.shadow", "unknown field"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "not a known IANA time zone"),
        ({"hashtags": ["ok", "two words"]}, "hashtags.1", "one word"),
        ({"approvers": [{"name": "No way to reach"}]}, "approvers.0", "email or a phone"),
        ({"approvers": [{"email": "not-an-email"}]}, "approvers.0.email", "email address"),
        ({"approvers": [{"phone": "555-1234"}]}, "approvers.0.phone", "E.164"),
        ({"notification_type": "sms"}, "notification_type", "'email'"),
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url", "http or https"),
        ({"notification_type": "webhook"}, "webhook_url", "is required when"),
        ({"default_account_ids": ["nope"]}, "default_account_ids.0", "no such account"),
        ({"requires_approval": "yes"}, "requires_approval", "boolean"),
        ({"topics": "coffee"}, "topics", "array"),
        ({"topics": ["coffee", " "]}, "topics.1", "must not be blank"),
    ],
)
def test_each_rule_names_its_field(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    result = client.simulate_post("/v1/brands", json={"name": "Acme", **body})

    assert result.status_code == 422
    assert result.json["error"]["code"] == "invalid_input"
    reasons = fields_of(result)
    assert field in reasons, reasons
    assert words in reasons[field]


def test_a_brand_without_a_name_is_refused(client: TestClient) -> None:
    result = client.simulate_post("/v1/brands", json={"tone": "warm"})

    assert result.status_code == 422
    assert fields_of(result) == {"name": "is required"}


def test_default_accounts_must_be_the_tenants_live_accounts(
    client: TestClient, other_client: TestClient, make_account: MakeAccount
) -> None:
    # Given an account of the tenant, a deleted one, and another tenant's
    mine, deleted = make_account("mine"), make_account("gone")
    assert client.simulate_delete(f"/v1/accounts/{deleted['id']}").status_code == 204
    theirs = other_client.simulate_post(
        "/v1/accounts", json={"platform": "sandbox", "handle": "theirs"}
    ).json

    # When a brand names them all (and the first twice)
    ids = [mine["id"], deleted["id"], theirs["id"], mine["id"]]
    result = client.simulate_post("/v1/brands", json={"name": "Acme", "default_account_ids": ids})

    # Then each bad one is named by its place
    assert result.status_code == 422
    assert fields_of(result) == {
        "default_account_ids.1": "no such account",
        "default_account_ids.2": "no such account",
        "default_account_ids.3": "repeats default_account_ids.0",
    }


def test_patch_changes_what_is_given_and_bumps_the_version(client: TestClient) -> None:
    brand = create(client, **FULL)

    result = client.simulate_patch(
        f"/v1/brands/{brand['id']}",
        json={"tone": None, "topics": ["cold brew"], "colors": {"primary": "#000000"}},
    )

    assert result.status_code == 200, result.json
    changed = result.json
    assert changed["version"] == 2
    assert changed["tone"] is None
    assert changed["topics"] == ["cold brew"]
    assert changed["colors"] == {"primary": "#000000"}  # the object is replaced whole
    for same in ("name", "hashtags", "approvers", "timezone", "fonts", "created_at"):
        assert changed[same] == brand[same]
    assert changed["updated_at"] >= brand["updated_at"]


def test_patch_refuses_null_where_a_value_is_needed(client: TestClient) -> None:
    brand = create(client)

    result = client.simulate_patch(
        f"/v1/brands/{brand['id']}", json={"name": None, "timezone": None, "topics": None}
    )

    assert result.status_code == 422
    assert fields_of(result) == {
        "name": "must not be null",
        "timezone": "must not be null",
        "topics": "must not be null",
    }
    assert client.simulate_get(f"/v1/brands/{brand['id']}").json["version"] == 1


def test_patch_checks_the_webhook_against_what_is_stored(client: TestClient) -> None:
    brand = create(client, notification_type="webhook", webhook_url="https://example.com/h")

    # Clearing the URL of a webhook brand is refused; changing the type first is fine
    cleared = client.simulate_patch(f"/v1/brands/{brand['id']}", json={"webhook_url": None})
    assert cleared.status_code == 422
    assert "webhook_url" in fields_of(cleared)
    both = client.simulate_patch(
        f"/v1/brands/{brand['id']}", json={"notification_type": "email", "webhook_url": None}
    )
    assert both.status_code == 200, both.json
    assert (both.json["notification_type"], both.json["webhook_url"]) == ("email", None)


def test_list_pages_newest_first(client: TestClient) -> None:
    names = [f"Brand {i}" for i in range(5)]
    for name in names:
        create(client, name=name)

    first = client.simulate_get("/v1/brands", params={"limit": "3"}).json
    second = client.simulate_get(
        "/v1/brands", params={"limit": "3", "cursor": first["next_cursor"]}
    ).json

    assert [b["name"] for b in first["data"] + second["data"]] == names[::-1]
    assert second["next_cursor"] is None
    bad = client.simulate_get("/v1/brands", params={"cursor": "nonsense"})
    assert bad.status_code == 422 and "cursor" in fields_of(bad)


def test_a_tenant_never_sees_another_tenants_brands(
    client: TestClient, other_client: TestClient
) -> None:
    brand = create(client)
    path = f"/v1/brands/{brand['id']}"

    assert other_client.simulate_get("/v1/brands").json["data"] == []
    assert other_client.simulate_get(path).status_code == 404
    assert other_client.simulate_patch(path, json={"name": "Mine now"}).status_code == 404
    assert other_client.simulate_delete(path).status_code == 404
    assert client.simulate_get(path).json["name"] == "Acme"


def test_delete_keeps_the_brands_posts(
    client: TestClient, engine: Engine, make_account: MakeAccount, make_post: Callable[..., dict]
) -> None:
    # Given a brand with a post
    brand = create(client)
    post = make_post([make_account()["id"]])
    with session_scope(engine) as session:
        session.execute(update(Post).where(Post.id == post["id"]).values(brand_id=brand["id"]))  # type: ignore[arg-type]
    assert client.simulate_get(f"/v1/posts/{post['id']}").json["brand_id"] == brand["id"]

    # When the brand is deleted
    result = client.simulate_delete(f"/v1/brands/{brand['id']}")

    # Then it is gone and the post stays, without a brand
    assert result.status_code == 204
    assert client.simulate_get(f"/v1/brands/{brand['id']}").status_code == 404
    kept = client.simulate_get(f"/v1/posts/{post['id']}")
    assert kept.status_code == 200
    assert kept.json["brand_id"] is None
