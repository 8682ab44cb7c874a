"""Connected accounts through the multi-process stack (gunicorn, publisher, two token-refreshers,
scheduler) on PostgreSQL and Redis, against a local X whose OAuth 2.0 server follows RFC 6749
and RFC 7636: connect through the browser flow, refresh on time without a request, one refresh
when two workers are asked at once, refresh on a 401 then publish once, and a revoked grant
that needs re-auth, holds the post, and is reconnected through OAuth.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from herald_common.broker import build_broker
from herald_common.contracts import REFRESH_ACCOUNT, RefreshAccountPayload, send
from herald_common.crypto import generate_key
from herald_common.settings import Settings
from herald_embedded.stack import Stack, wait_for
from tests.e2e.conftest import e2e_stack
from tests.e2e.helpers import post_json
from tests.e2e.test_publish_flow import settled
from tests.platforms.fake_oauth import OAuthAuthority, x_authority
from tests.platforms.fake_x import FakeX
from tests.platforms.servers import running

CLIENT_ID, CLIENT_SECRET = "herald-e2e", "e2e-client-secret"
TOKEN_PATH = "/2/oauth2/token"


@pytest.fixture(scope="module")
def x() -> Iterator[FakeX]:
    with running(FakeX()) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    pg_url: str, redis_server_url: str, x: FakeX, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with e2e_stack(pg_url, redis_server_url, tmp_path_factory.mktemp("accounts-logs")) as stack:
        stack.env_overrides = {
            "HERALD_SECRET_KEYS": generate_key(),
            "PUBLIC_URL": stack.base_url,
            "X_API_URL": x.url,
            "X_AUTHORIZE_URL": f"{x.url}/i/oauth2/authorize",
            "X_CLIENT_ID": CLIENT_ID,
            "X_CLIENT_SECRET": CLIENT_SECRET,
            "PLATFORM_ALLOW_PRIVATE_ADDRESSES": "true",
            "PLATFORM_POLL_INTERVAL_SECONDS": "0.05",
            "PUBLISH_BACKOFF_SECONDS": "1",
            # Nothing weekly during these tests: the module's counts are of its own refreshes.
            "TOKEN_REFRESH_CRON": "0 0 1 1 *",
        }
        stack.start(services=())
        stack.start_token_refresher("token-refresher-2")
        yield stack


@pytest.fixture(scope="module")
def authority(x: FakeX, stack: Stack) -> OAuthAuthority:
    # Tokens live 10 minutes: inside the 15-minute refresh window from the start.
    authority = x_authority(x, access_lifetime=600.0)
    authority.register_client(
        CLIENT_ID,
        CLIENT_SECRET,
        [f"{stack.base_url}/v1/accounts/connect/x/callback"],
        auth_method="basic",
    )
    return authority


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as http:
        yield http


def connect_through_the_browser(client: httpx.Client, account_id: str | None = None) -> dict:
    """What an app and its user's browser do: start, consent on X, come back to the callback."""
    params = {"account_id": account_id} if account_id else {}
    started = client.get("/v1/accounts/connect/x", params=params)
    assert started.status_code == 200, started.text
    consent = httpx.get(started.json()["authorize_url"], follow_redirects=False, timeout=10)
    assert consent.status_code == 302, consent.text
    callback = httpx.get(consent.headers["location"], timeout=10)  # no API key: the state is it
    assert callback.status_code == 200, callback.text
    [account] = callback.json()["data"]
    return dict(account)


def account(client: httpx.Client, account_id: str) -> dict:
    return dict(client.get(f"/v1/accounts/{account_id}").json())


def refreshed_after(client: httpx.Client, account_id: str, since: str | None):
    def check() -> dict | None:
        body = account(client, account_id)
        if body["refreshed_at"] and (since is None or body["refreshed_at"] > since):
            return body
        return None

    return check


def test_x_is_connected_through_oauth_and_an_expiring_token_is_refreshed_unasked(
    client, x, authority
):
    # When an X account is connected through the authorization-code flow with PKCE
    exchanges, refreshes = authority.code_exchanges, authority.refresh_calls
    connected = connect_through_the_browser(client)

    # Then it holds X's user, a token that expires in 10 minutes, and no secret is shown
    assert (connected["handle"], connected["external_id"]) == (x.user["username"], x.user["id"])
    assert connected["settings"]["user_id"] == x.user["id"]
    assert connected["status"] == "active" and connected["has_credentials"] is True
    assert authority.code_exchanges == exchanges + 1
    expires = datetime.fromisoformat(connected["token_expires_at"])
    assert (expires - datetime.fromisoformat(connected["refreshed_at"])).total_seconds() > 590

    # And without anyone asking, the token-refresher renews it (it expires within 15 minutes)
    body = wait_for(
        refreshed_after(client, connected["id"], connected["refreshed_at"]),
        timeout=20,
        what="the expiring token to be refreshed",
    )
    assert authority.refresh_calls == refreshes + 1
    assert body["token_expires_at"] > connected["token_expires_at"]
    assert body["status"] == "active"
    # The rotated refresh token is the only live one: the old one was spent once
    assert len(authority.live_refresh_tokens(x.user["id"])) == 1

    # And a post goes out with the new token
    text = f"Connected through OAuth {uuid.uuid4().hex[:6]}"
    post = post_json(
        client, "/v1/posts", {"content": text, "account_ids": [body["id"]], "publish_now": True}
    )
    done = wait_for(settled(client, post["id"], "published", "failed"), timeout=20)
    assert done["status"] == "published", done
    assert [p for p in x.posts.values() if p["text"] == text]


def test_two_token_refreshers_asked_at_once_make_one_refresh_call(
    stack, client, x, authority, redis_server_url, pg_url
):
    # Given a connected account with a long-lived token (nothing due on its own)
    authority.access_lifetime = 7200.0
    connected = connect_through_the_browser(client)
    time.sleep(1)  # a refresh the short token of the last test asked for may still be finishing
    before = authority.refresh_calls

    # When X holds its token answer, and the account is asked to refresh through the API and
    # by four more messages straight onto the queue, drained by two token-refresher processes
    x.release.clear()
    x.held.clear()
    x.hold_path = TOKEN_PATH
    try:
        assert client.post(f"/v1/accounts/{connected['id']}/refresh").status_code == 202
        broker = build_broker(
            Settings(redis_url=redis_server_url, HERALD_BROKER_NAMESPACE=stack.namespace)
        )
        payload = RefreshAccountPayload(
            tenant_id=_tenant_of(pg_url, connected["id"]),
            account_id=connected["id"],
            reason="manual",
        )
        for _ in range(4):
            send(broker, REFRESH_ACCOUNT, payload)
        assert x.held.wait(20), "no refresh reached X"
        time.sleep(2)  # every other message is handled while the first refresh is in flight
    finally:
        x.release.set()
        x.hold_path = None

    # Then X saw exactly one refresh, and the account is active with the rotated token
    body = wait_for(
        lambda: (b := account(client, connected["id"]))["status"] == "active" and b, timeout=10
    )
    assert authority.refresh_calls == before + 1
    assert body["refresh_error"] is None
    logs = stack.log("token-refresher") + stack.log("token-refresher-2")
    assert "is not due or is being refreshed; skipped" in logs


def _tenant_of(pg_url: str, account_id: str) -> str:
    """The account's tenant, read from the database (the API never needs to say it)."""
    from sqlalchemy import text

    from herald_common.db import create_db_engine

    engine = create_db_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return str(
                connection.execute(
                    text("SELECT tenant_id FROM accounts WHERE id = :id"), {"id": account_id}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_401_refreshes_the_token_and_the_post_goes_out_once(client, x, authority):
    # Given a connected account whose access token X no longer accepts (it expired early)
    authority.access_lifetime = 7200.0
    connected = connect_through_the_browser(client)
    authority.expire_access_token()
    before = authority.refresh_calls
    text = f"After a 401 {uuid.uuid4().hex[:6]}"

    # When a post is published now
    post = post_json(
        client,
        "/v1/posts",
        {"content": text, "account_ids": [connected["id"]], "publish_now": True},
    )
    done = wait_for(settled(client, post["id"], "published", "failed"), timeout=30)

    # Then the 401 asked for a refresh, and the one more try after it published, once
    assert done["status"] == "published", done
    [target] = done["targets"]
    assert [a["outcome"] for a in target["attempts"]] == ["needs_auth", "published"]
    assert target["attempts"][0]["http_status"] == 401
    assert authority.refresh_calls == before + 1
    assert len([p for p in x.posts.values() if p["text"] == text]) == 1


def test_a_revoked_grant_needs_reauth_holds_the_post_and_oauth_reconnects_it(client, x, authority):
    # Given a connected account whose user then removed Herald's access on X
    authority.access_lifetime = 7200.0
    connected = connect_through_the_browser(client)
    revoked = [*authority.live_access_tokens(), *authority.live_refresh_tokens()]
    authority.revoke_user(x.user["id"])

    # When its tokens are refreshed (asked for here; the weekly run does it too)
    assert client.post(f"/v1/accounts/{connected['id']}/refresh").status_code == 202

    # Then the account needs connecting again, with X's reason, and no secret in it
    body = wait_for(
        lambda: (b := account(client, connected["id"]))["status"] == "needs_reauth" and b,
        timeout=20,
        what="needs_reauth",
    )
    assert body["status_reason"]
    for secret in [*revoked, CLIENT_SECRET]:
        assert secret not in body["status_reason"]

    # And its next post waits, saying why, spending no attempt
    text = f"Waits for X {uuid.uuid4().hex[:6]}"
    post = post_json(
        client,
        "/v1/posts",
        {"content": text, "account_ids": [connected["id"]], "publish_now": True},
    )

    def held() -> dict | None:
        got = client.get(f"/v1/posts/{post['id']}").json()
        return got if got["targets"][0]["error_kind"] == "needs_reauth" else None

    waiting = wait_for(held, timeout=20, what="the post to wait")
    [target] = waiting["targets"]
    assert target["status"] == "retrying" and target["attempts"] == []
    assert target["error"].startswith("waiting for the account to be connected again")

    # When the user connects it again through OAuth (re-auth of this same account)
    again = connect_through_the_browser(client, account_id=connected["id"])

    # Then it is the same account, active, and the held post goes out once
    assert again["id"] == connected["id"] and again["status"] == "active"
    done = wait_for(settled(client, post["id"], "published", "failed"), timeout=20)
    assert done["status"] == "published", done
    assert len([p for p in x.posts.values() if p["text"] == text]) == 1


def test_no_token_or_client_secret_reaches_any_log(stack, authority):
    secrets = [CLIENT_SECRET, *authority.live_access_tokens(), *authority.live_refresh_tokens()]
    assert len(secrets) > 2
    for name in ("api", "publisher", "token-refresher", "token-refresher-2", "scheduler"):
        text = (stack.logdir / f"{name}.log").read_text(errors="replace")
        leaked = [s for s in secrets if s in text]
        assert leaked == [], f"{name} log holds a secret"
