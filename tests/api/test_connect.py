"""Connecting accounts through the API: direct credentials (Bluesky, Mastodon), the OAuth
flow's checks, and asking for refreshes; against local servers that answer as the docs say."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_api.auth import issue_api_key
from herald_common.crypto import generate_key
from herald_common.db import session_scope
from herald_common.models import Account, OAuthState
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from tests.api.conftest import Tenant
from tests.platforms.fake_oauth import OAuthAuthority, redirect_params, x_authority
from tests.platforms.fake_x import FakeX
from tests.platforms.servers import FakeMastodon, FakePDS, running

X_CALLBACK = "https://herald.example/v1/accounts/connect/x/callback"


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as server:
        yield server


@pytest.fixture
def pds() -> Iterator[FakePDS]:
    server = FakePDS()
    server.jwt = True
    with running(server) as started:
        yield started


@pytest.fixture
def x() -> Iterator[FakeX]:
    with running(FakeX()) as server:
        yield server


@pytest.fixture
def authority(x: FakeX) -> OAuthAuthority:
    authority = x_authority(x)
    authority.register_client("x-client", "x-secret", [X_CALLBACK], auth_method="basic")
    return authority


@pytest.fixture
def settings(tmp_path: Path, x: FakeX) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'herald.db'}",
        redis_url=None,
        redis_host=None,
        HERALD_SECRET_KEYS=generate_key(),
        platform_allow_private_addresses=True,
        public_url="https://herald.example",
        x_client_id="x-client",
        x_client_secret="x-secret",
        x_api_url=x.url,
        x_authorize_url=f"{x.url}/i/oauth2/authorize",
    )


def come_back(client: TestClient, anonymous: TestClient, **params: str) -> Any:
    """Start an X connect, consent on the local X, and land on Herald's callback."""
    started = client.simulate_get("/v1/accounts/connect/x", params=params).json
    consent = httpx.get(started["authorize_url"], follow_redirects=False, timeout=5)
    assert consent.status_code == 302, consent.text
    back = redirect_params(consent.headers["location"])
    assert consent.headers["location"].startswith(X_CALLBACK)
    return anonymous.simulate_get("/v1/accounts/connect/x/callback", params=back)


def stored(engine: Engine, account_id: str) -> Account:
    with session_scope(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None
        session.expunge(account)
        return account


def test_a_mastodon_account_is_connected_with_a_checked_token(client, engine, mastodon, platforms):
    # When a Mastodon account is connected with its instance and token
    result = client.simulate_post(
        "/v1/accounts/connect/mastodon",
        json={"instance_url": mastodon.url, "access_token": mastodon.token},
    )

    # I expect the token checked with the instance, the handle and id taken from it, and the
    # token stored sealed, never shown
    assert result.status_code == 201, result.json
    body = result.json
    assert body["handle"].startswith("@alice@")
    assert body["external_id"] == "109"
    assert body["has_credentials"] is True and "credentials" not in body
    assert mastodon.token not in result.text
    assert len(mastodon.calls("/api/v1/accounts/verify_credentials")) == 1
    account = stored(engine, body["id"])
    assert mastodon.token not in (account.credentials or "")
    assert platforms.credentials_of(account) == {"access_token": mastodon.token}


def test_a_refused_mastodon_token_is_a_422_naming_it(client, engine, mastodon):
    result = client.simulate_post(
        "/v1/accounts/connect/mastodon",
        json={"instance_url": mastodon.url, "access_token": "wrong-token"},
    )
    assert result.status_code == 422
    [field] = result.json["error"]["fields"]
    assert field["field"] == "access_token"
    assert "wrong-token" not in result.text
    with session_scope(engine) as session:
        assert session.exec(select(Account)).all() == []


def test_a_bluesky_account_is_connected_with_an_app_password(client, engine, pds, platforms):
    # When a Bluesky account is connected with its handle and app password
    result = client.simulate_post(
        "/v1/accounts/connect/bluesky",
        json={"handle": pds.handle, "app_password": pds.password, "service_url": pds.url},
    )

    # I expect a session made, the DID as its id, and the token's expiry known
    assert result.status_code == 201, result.json
    body = result.json
    assert (body["handle"], body["external_id"]) == (pds.handle, pds.did)
    assert body["token_expires_at"] is not None
    assert pds.password not in result.text
    credentials = platforms.credentials_of(stored(engine, body["id"]))
    assert credentials["app_password"] == pds.password
    assert credentials["did"] == pds.did


def test_connecting_the_same_account_again_updates_it_and_reactivates_it(client, engine, mastodon):
    # Given a connected account that later needed re-auth
    body = {"instance_url": mastodon.url, "access_token": mastodon.token}
    first = client.simulate_post("/v1/accounts/connect/mastodon", json=body).json
    with session_scope(engine) as session:
        account = session.get(Account, first["id"])
        account.status, account.status_reason = "needs_reauth", "The access token is invalid"
        session.add(account)

    # When it is connected again
    again = client.simulate_post("/v1/accounts/connect/mastodon", json=body)

    # I expect the same account, active again
    assert again.status_code == 201
    assert again.json["id"] == first["id"]
    assert (again.json["status"], again.json["status_reason"]) == ("active", None)
    assert len(client.simulate_get("/v1/accounts").json["data"]) == 1


def test_direct_connect_names_missing_and_foreign_fields(client):
    result = client.simulate_post(
        "/v1/accounts/connect/bluesky", json={"handle": "alice.test", "access_token": "t"}
    )
    assert result.status_code == 422
    fields = {f["field"]: f["reason"] for f in result.json["error"]["fields"]}
    assert fields == {"app_password": "is required", "access_token": "is not used by bluesky"}


def test_platforms_are_connected_the_way_they_work(client):
    # OAuth platforms are not connected with credentials, and the other way round
    x = client.simulate_post("/v1/accounts/connect/x", json={"access_token": "t"})
    assert x.status_code == 422
    assert "GET /v1/accounts/connect/x" in x.json["error"]["fields"][0]["reason"]
    mastodon = client.simulate_get("/v1/accounts/connect/mastodon")
    assert mastodon.status_code == 422
    assert "POST /v1/accounts/connect/mastodon" in mastodon.json["error"]["fields"][0]["reason"]
    # The sandbox has nothing to connect; an unknown platform is a 404
    assert client.simulate_get("/v1/accounts/connect/sandbox").status_code == 422
    assert client.simulate_get("/v1/accounts/connect/myspace").status_code == 404
    # A platform whose app this server has not configured says what to set
    linkedin = client.simulate_get("/v1/accounts/connect/linkedin")
    assert linkedin.status_code == 422
    assert "no linkedin app configured" in linkedin.json["error"]["fields"][0]["reason"]


def test_starting_oauth_gives_the_authorize_url_and_keeps_only_a_hash(client, engine):
    # When an X connect is started
    result = client.simulate_get("/v1/accounts/connect/x")

    # I expect the authorize URL with state, PKCE and the registered callback, and the state
    # kept only as its hash, with the verifier sealed
    assert result.status_code == 200, result.json
    body = result.json
    assert result.headers["Cache-Control"] == "no-store"
    assert body["redirect_uri"] == "https://herald.example/v1/accounts/connect/x/callback"
    url = body["authorize_url"]
    assert f"state={body['state']}" in url
    assert "code_challenge_method=S256" in url
    with session_scope(engine) as session:
        [flow] = session.exec(select(OAuthState)).all()
        assert flow.state_hash != body["state"] and len(flow.state_hash) == 64
        assert flow.code_verifier is not None and "code_challenge" not in flow.code_verifier


def test_the_callback_refuses_unknown_used_expired_and_declined_flows(client, anonymous, engine):
    callback = "/v1/accounts/connect/x/callback"
    # No state at all, and a state nobody issued
    assert anonymous.simulate_get(callback, params={"code": "c"}).status_code == 422
    unknown = anonymous.simulate_get(callback, params={"code": "c", "state": "forged"})
    assert unknown.status_code == 400
    assert "unknown" in unknown.json["error"]["message"]

    # A state issued for X, used on the LinkedIn callback
    state = client.simulate_get("/v1/accounts/connect/x").json["state"]
    wrong = anonymous.simulate_get(
        "/v1/accounts/connect/linkedin/callback", params={"code": "c", "state": state}
    )
    assert wrong.status_code == 400

    # The user declined on the platform's page: the flow ends with the platform's words
    declined = anonymous.simulate_get(
        callback,
        params={"state": state, "error": "access_denied", "error_description": "User denied"},
    )
    assert declined.status_code == 400
    assert "User denied" in declined.json["error"]["message"]
    # ...and the state cannot be used again
    again = anonymous.simulate_get(callback, params={"code": "c", "state": state})
    assert again.status_code == 400
    assert "already used" in again.json["error"]["message"]

    # An expired one
    state = client.simulate_get("/v1/accounts/connect/x").json["state"]
    with session_scope(engine) as session:
        for flow in session.exec(select(OAuthState)).all():
            flow.expires_at = utcnow()
            session.add(flow)
    expired = anonymous.simulate_get(callback, params={"code": "c", "state": state})
    assert expired.status_code == 400
    assert "expired" in expired.json["error"]["message"]


def test_reconnecting_names_an_account_of_the_same_platform(client, mastodon):
    account = client.simulate_post(
        "/v1/accounts/connect/mastodon",
        json={"instance_url": mastodon.url, "access_token": mastodon.token},
    ).json
    result = client.simulate_get("/v1/accounts/connect/x", params={"account_id": account["id"]})
    assert result.status_code == 422
    assert result.json["error"]["fields"][0]["field"] == "account_id"


def test_asking_for_a_refresh_marks_the_account_due(client, engine, mastodon):
    account = client.simulate_post(
        "/v1/accounts/connect/mastodon",
        json={"instance_url": mastodon.url, "access_token": mastodon.token},
    ).json

    result = client.simulate_post(f"/v1/accounts/{account['id']}/refresh")

    assert result.status_code == 202
    assert stored(engine, account["id"]).refresh_due_at is not None
    # The sandbox has no tokens; another tenant's account does not exist
    sandbox = client.simulate_post(
        "/v1/accounts", json={"platform": "sandbox", "handle": "demo"}
    ).json
    assert client.simulate_post(f"/v1/accounts/{sandbox['id']}/refresh").status_code == 409


def test_another_tenant_cannot_refresh_or_reconnect_an_account(
    client, app, mastodon, other_tenant: Tenant
):
    account = client.simulate_post(
        "/v1/accounts/connect/mastodon",
        json={"instance_url": mastodon.url, "access_token": mastodon.token},
    ).json
    other = TestClient(app, headers=other_tenant.headers)
    assert other.simulate_post(f"/v1/accounts/{account['id']}/refresh").status_code == 404
    reconnect = other.simulate_get("/v1/accounts/connect/x", params={"account_id": account["id"]})
    assert reconnect.status_code == 404


def test_the_admin_refresh_needs_an_admin_key(client, app, engine, tenant: Tenant, mastodon):
    account = client.simulate_post(
        "/v1/accounts/connect/mastodon",
        json={"instance_url": mastodon.url, "access_token": mastodon.token},
    ).json
    # A tenant's ordinary key is refused
    refused = client.simulate_post("/v1/admin/refresh-tokens", json={})
    assert refused.status_code == 403

    with session_scope(engine) as session:
        key = issue_api_key(session, tenant.id, name="ops", is_admin=True)
    admin = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    one = admin.simulate_post("/v1/admin/refresh-tokens", json={"account_id": account["id"]})
    assert (one.status_code, one.json) == (202, {"requested": 1})
    every = admin.simulate_post("/v1/admin/refresh-tokens", json={})
    assert (every.status_code, every.json) == (202, {"requested": 1})
    missing = admin.simulate_post("/v1/admin/refresh-tokens", json={"account_id": "nope"})
    assert missing.status_code == 404


def test_the_oauth_callback_exchanges_the_code_and_stores_the_account(
    client, anonymous, engine, x, authority, platforms
):
    # When a user consents on X and comes back to the callback
    result = come_back(client, anonymous)

    # I expect the code exchanged with its PKCE verifier, the account stored with X's user
    # and a sealed rotating token pair, and nothing secret in the answer
    assert result.status_code == 200, result.json
    [account] = result.json["data"]
    assert (account["handle"], account["external_id"]) == (x.user["username"], x.user["id"])
    assert account["token_expires_at"] is not None
    assert authority.code_exchanges == 1
    credentials = platforms.credentials_of(stored(engine, account["id"]))
    assert credentials["access_token"] in authority.live_access_tokens()
    assert credentials["refresh_token"] in authority.live_refresh_tokens()
    for secret in (credentials["access_token"], credentials["refresh_token"], "x-secret"):
        assert secret not in result.text

    # And connecting the same X user again updates that account instead of adding one
    again = come_back(client, anonymous)
    assert again.status_code == 200 and again.json["data"][0]["id"] == account["id"]
    assert authority.code_exchanges == 2
    assert len(client.simulate_get("/v1/accounts").json["data"]) == 1


def test_a_replayed_callback_exchanges_nothing(client, anonymous, authority):
    started = client.simulate_get("/v1/accounts/connect/x").json
    consent = httpx.get(started["authorize_url"], follow_redirects=False, timeout=5)
    back = redirect_params(consent.headers["location"])
    callback = "/v1/accounts/connect/x/callback"
    assert anonymous.simulate_get(callback, params=back).status_code == 200
    replay = anonymous.simulate_get(callback, params=back)
    assert replay.status_code == 400
    assert authority.code_exchanges == 1


def test_reconnecting_as_another_platform_user_is_refused(client, anonymous, engine, x, authority):
    first = come_back(client, anonymous).json["data"][0]
    # The same tenant has this account; another X user signs in to reconnect it
    x.user = {**x.user, "id": "99", "username": "mallory"}
    authority.approving_user = "99"
    result = come_back(client, anonymous, account_id=first["id"])
    assert result.status_code == 409
    assert "mallory" in result.json["error"]["message"]
    assert stored(engine, first["id"]).external_id != "99"


def test_the_callback_says_what_went_wrong_with_the_exchange(client, anonymous, x, authority):
    # X down: 503 with Retry-After, and the user is told to start again (the state is spent)
    x.fail_next(1, 503, {"title": "Service Unavailable"}, {"Retry-After": "7"}, path="/2/oauth2")
    down = come_back(client, anonymous)
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "7"
    assert "start connecting again" in down.json["error"]["message"]

    # Herald's app refused (a wrong client secret): 502, naming the settings to check
    authority.register_client("x-client", "another-secret", [X_CALLBACK], auth_method="basic")
    refused = come_back(client, anonymous)
    assert refused.status_code == 502
    assert "X_CLIENT_SECRET" in refused.json["error"]["message"]
    assert "x-secret" not in refused.text
