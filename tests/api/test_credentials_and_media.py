"""Accounts' secrets (checked per platform, encrypted at rest, never shown) and posts' media."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from falcon.testing import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from herald_api.app import create_app
from herald_common.crypto import CredentialBox
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

from .conftest import Tenant, fields_of

TOKEN = "mastodon-token-5f1e2d3c4b5a"


def _mastodon(client: TestClient, **extra: Any) -> Any:
    body = {
        "platform": "mastodon",
        "handle": "alice@example.social",
        "settings": {"instance_url": "https://example.social"},
        "credentials": {"access_token": TOKEN},
        **extra,
    }
    return client.simulate_post("/v1/accounts", json=body)


def test_credentials_are_encrypted_at_rest_and_never_returned(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    # When a Mastodon account is connected with its token
    created = _mastodon(client)

    # Then the response says a secret is stored, and shows no part of it
    assert created.status_code == 201, created.json
    assert created.json["has_credentials"] is True
    assert TOKEN not in created.text
    assert TOKEN not in client.simulate_get(f"/v1/accounts/{created.json['id']}").text
    assert TOKEN not in client.simulate_get("/v1/accounts").text

    # And the database holds ciphertext that the configured key opens to the token
    with engine.connect() as connection:
        stored = connection.execute(
            text("SELECT credentials FROM accounts WHERE id = :id"), {"id": created.json["id"]}
        ).scalar_one()
    assert TOKEN not in stored
    assert CredentialBox(settings.secret_keys).open(stored) == {"access_token": TOKEN}


def test_credentials_are_checked_against_the_platform(client: TestClient) -> None:
    # When the token is missing and an unknown secret is given
    result = _mastodon(client, credentials={"password": "hunter2"})

    # Then 422 names both fields, and the value is not echoed
    assert result.status_code == 422
    assert fields_of(result) == {
        "credentials.access_token": "is required",
        "credentials.password": "unknown field",
    }
    assert "hunter2" not in result.text


def test_platform_settings_are_required(client: TestClient) -> None:
    result = _mastodon(client, settings={})

    assert result.status_code == 422
    assert fields_of(result) == {"settings.instance_url": "is required"}


def test_without_a_secret_key_credentials_are_refused_and_nothing_is_written(
    tmp_path, engine: Engine, tenant: Tenant, broker
) -> None:
    # Given a server started without HERALD_SECRET_KEYS
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'herald.db'}", redis_url=None, redis_host=None
    )
    platforms = PlatformRegistry(engine, settings)
    app = create_app(settings, engine=engine, broker=broker, platforms=platforms)
    client = TestClient(app, headers=tenant.headers)

    # When an account with a token is connected
    result = _mastodon(client)

    # Then it is refused with the reason, and no account exists
    assert result.status_code == 422
    assert "HERALD_SECRET_KEYS" in fields_of(result)["credentials"]
    assert client.simulate_get("/v1/accounts").json["data"] == []
    platforms.close()


def test_new_credentials_replace_the_old_and_reactivate_the_account(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    # Given an account that needs re-auth
    account = _mastodon(client).json
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE accounts SET status = 'needs_reauth', status_reason = 'revoked'")
        )

    # When new credentials are sent
    result = client.simulate_patch(
        f"/v1/accounts/{account['id']}", json={"credentials": {"access_token": "new-token"}}
    )

    # Then the account is active again and holds only the new token
    assert result.status_code == 200, result.json
    assert (result.json["status"], result.json["status_reason"]) == ("active", None)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT credentials FROM accounts")).scalar_one()
    assert CredentialBox(settings.secret_keys).open(stored) == {"access_token": "new-token"}


# -- media ------------------------------------------------------------------------------------


def test_media_is_stored_with_its_kind(
    client: TestClient, make_account: Callable[..., dict[str, Any]]
) -> None:
    account = make_account()

    # When a post has an image (kind from its MIME type) and a video (kind from its extension)
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "",
            "account_ids": [account["id"]],
            "media": [
                {"url": "https://cdn.example/a", "mime_type": "image/png", "alt": "A chart"},
                {"url": "https://cdn.example/clip.mp4"},
            ],
        },
    )

    # Then the post (empty text is fine with media) keeps both, each with its kind
    assert result.status_code == 201, result.json
    assert result.json["media"] == [
        {
            "url": "https://cdn.example/a",
            "mime_type": "image/png",
            "alt": "A chart",
            "kind": "image",
        },
        {"url": "https://cdn.example/clip.mp4", "kind": "video"},
    ]


def test_bad_media_is_422_naming_the_item(
    client: TestClient, make_account: Callable[..., dict[str, Any]]
) -> None:
    account = make_account()

    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "Hello",
            "account_ids": [account["id"]],
            "media": [{"url": "file:///etc/passwd"}, {"url": "https://x.example/a", "kind": "gif"}],
        },
    )

    assert result.status_code == 422
    errors = fields_of(result)
    assert errors["media.0.url"] == "must be an http or https URL with a host"
    assert "media.1.kind" in errors


def test_a_platform_limit_names_the_rule_and_the_account(client: TestClient) -> None:
    # Given a Mastodon account on a server that takes 50 characters
    account = _mastodon(
        client, settings={"instance_url": "https://example.social", "max_characters": 50}
    ).json

    # When a post too long for it, with five attachments, is created
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "x" * 51,
            "account_ids": [account["id"]],
            "media": [{"url": f"https://cdn.example/{i}.png"} for i in range(5)],
        },
    )

    # Then each broken rule is its own error, naming the field, the rule and the account
    assert result.status_code == 422
    fields = result.json["error"]["fields"]
    assert {(f["field"], f["rule"], f["account_id"]) for f in fields} == {
        ("content", "max_characters", account["id"]),
        ("media", "max_media", account["id"]),
    }
    assert any("too long for mastodon account @alice@example.social" in f["reason"] for f in fields)
