"""The operator's console: who may sign in, the session cookie, CSRF on every action, the
pages' security headers, and the admin API's key routes that the console shares."""

from __future__ import annotations

import re
from datetime import timedelta

import falcon
import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from herald_api.auth import ApiKeys, issue_api_key
from herald_api.console import sessions as console_sessions
from herald_api.console.sessions import Sessions
from herald_api.services.console import MASKED, mask, percentile
from herald_common.db import session_scope
from herald_common.errors import Forbidden, Unauthorized
from herald_common.timeutil import utcnow
from tests.api.conftest import Tenant, future, iso

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def admin_key(engine: Engine, tenant: Tenant) -> str:
    with session_scope(engine) as session:
        return issue_api_key(session, tenant.id, name="ops", is_admin=True)


@pytest.fixture
def browser(app: falcon.App) -> TestClient:
    return TestClient(app)


def sign_in(browser: TestClient, key: str, **extra: str):  # type: ignore[no-untyped-def]
    form = browser.simulate_get("/admin/sign-in")
    token = form.cookies[console_sessions.SIGN_IN_COOKIE].value
    return browser.simulate_post(
        "/admin/sign-in",
        body=f"api_key={key}&csrf_token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded", **extra},
        cookies={console_sessions.SIGN_IN_COOKIE: token},
    )


def session_of(browser: TestClient, key: str) -> tuple[str, str]:
    """The session cookie of a sign-in with `key`, and its CSRF token (from a page)."""
    signed = sign_in(browser, key)
    assert signed.status_code == 303, signed.text
    cookie = signed.cookies[console_sessions.COOKIE].value
    page = browser.simulate_get("/admin/tenants", cookies={console_sessions.COOKIE: cookie})
    return cookie, _CSRF.findall(page.text)[0]


def _key_id(admin: TestClient, key: str) -> str:
    prefix = key.split("_")[1]
    return next(
        k["id"] for k in admin.simulate_get("/v1/admin/keys").json["data"] if k["prefix"] == prefix
    )


def post_form(browser: TestClient, path: str, cookie: str, body: str, **headers: str):  # type: ignore[no-untyped-def]
    return browser.simulate_post(
        path,
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        cookies={console_sessions.COOKIE: cookie},
    )


def test_an_admin_key_signs_in_to_a_strict_http_only_session(
    browser: TestClient, admin_key: str
) -> None:
    # When an admin key signs in over plain HTTP
    signed = sign_in(browser, admin_key)
    # I expect a session cookie that scripts cannot read and other sites never send
    assert signed.status_code == 303
    assert signed.headers["location"].endswith("/admin/overview")
    cookie = signed.cookies[console_sessions.COOKIE]
    assert cookie.http_only and cookie.same_site == "Strict" and cookie.path == "/admin"
    assert not cookie.secure  # there is no TLS to require
    assert admin_key not in cookie.value
    # and the overview opens with it, behind a policy that allows only Herald's own assets
    page = browser.simulate_get("/admin/overview", cookies={"herald_console": cookie.value})
    assert page.status_code == 200
    assert "System:" in page.text and 'data-queue="publish"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"


def test_over_tls_the_cookies_are_secure(browser: TestClient, admin_key: str) -> None:
    form = browser.simulate_get("/admin/sign-in", protocol="https")
    assert form.cookies[console_sessions.SIGN_IN_COOKIE].secure
    token = form.cookies[console_sessions.SIGN_IN_COOKIE].value
    signed = browser.simulate_post(
        "/admin/sign-in",
        protocol="https",
        body=f"api_key={admin_key}&csrf_token={token}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        cookies={console_sessions.SIGN_IN_COOKIE: token},
    )
    assert signed.cookies[console_sessions.COOKIE].secure


def test_a_tenant_key_cannot_sign_in(browser: TestClient, tenant: Tenant) -> None:
    refused = sign_in(browser, tenant.key)
    assert refused.status_code == 403
    assert "only an admin key" in refused.text
    assert console_sessions.COOKIE not in refused.cookies


def test_a_wrong_or_revoked_key_cannot_sign_in(
    browser: TestClient, admin_key: str, admin: TestClient
) -> None:
    assert sign_in(browser, admin_key[:-2] + "xx").status_code == 401
    key_id = _key_id(admin, admin_key)
    assert admin.simulate_post(f"/v1/admin/keys/{key_id}/revoke").status_code == 200
    refused = sign_in(browser, admin_key)
    assert refused.status_code == 401 and "revoked" in refused.text


def test_sign_in_needs_its_form_token(browser: TestClient, admin_key: str) -> None:
    # A form posted from elsewhere has no matching double-submit token
    forged = browser.simulate_post(
        "/admin/sign-in",
        body=f"api_key={admin_key}&csrf_token=guessed",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        cookies={console_sessions.SIGN_IN_COOKIE: "another"},
    )
    assert forged.status_code == 403
    assert console_sessions.COOKIE not in forged.cookies
    # and neither does one from another origin, token or not
    other_site = sign_in(browser, admin_key, Origin="https://evil.example")
    assert other_site.status_code == 403


def test_every_action_needs_the_session_csrf_token(
    browser: TestClient, admin_key: str, engine: Engine
) -> None:
    cookie, csrf = session_of(browser, admin_key)
    # Without the token, or with another, nothing is created
    for body in ("name=Mallory", "name=Mallory&csrf_token=" + "x" * len(csrf)):
        refused = post_form(browser, "/admin/tenants", cookie, body)
        assert refused.status_code == 403 and "CSRF" in refused.text
    # From another site, even with the token
    refused = post_form(
        browser, "/admin/tenants", cookie, f"name=Mallory&csrf_token={csrf}", Origin="http://x.io"
    )
    assert refused.status_code == 403
    assert (
        "Mallory"
        not in browser.simulate_get("/admin/tenants", cookies={"herald_console": cookie}).text
    )
    # With it, the tenant is made and its first key shown once
    made = post_form(browser, "/admin/tenants", cookie, f"name=Initech&csrf_token={csrf}")
    assert made.status_code == 201
    assert re.search(r'id="issued-key">hrld_[A-Za-z0-9]{12}_', made.text)


def test_a_token_of_another_session_is_refused(browser: TestClient, admin_key: str) -> None:
    mine, _ = session_of(browser, admin_key)
    _, theirs = session_of(browser, admin_key)
    refused = post_form(browser, "/admin/tenants", mine, f"name=X&csrf_token={theirs}")
    assert refused.status_code == 403


def test_without_a_session_pages_send_to_sign_in(browser: TestClient) -> None:
    for path in ("/admin/overview", "/admin/queues/publish", "/admin/tenants", "/admin/cron"):
        answer = browser.simulate_get(path, cookies={"herald_console": "made-up"})
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/sign-in"
    assert browser.simulate_get("/admin/overview/live").status_code == 401
    assert browser.simulate_post("/admin/tenants", body="name=x").status_code == 303


def test_signing_out_and_revoking_the_key_end_the_session(
    browser: TestClient, admin_key: str, admin: TestClient
) -> None:
    cookie, csrf = session_of(browser, admin_key)
    out = post_form(browser, "/admin/sign-out", cookie, f"csrf_token={csrf}")
    assert out.status_code == 303
    assert (
        browser.simulate_get("/admin/overview", cookies={"herald_console": cookie}).status_code
        == 303
    )
    # A second session ends when its key is revoked, at once (no cache in between)
    cookie, csrf = session_of(browser, admin_key)
    admin.simulate_post(f"/v1/admin/keys/{_key_id(admin, admin_key)}/revoke")
    assert (
        browser.simulate_get("/admin/overview", cookies={"herald_console": cookie}).status_code
        == 303
    )


def test_a_session_ends_after_its_lifetime(engine: Engine, admin_key: str) -> None:
    now = [utcnow()]
    sessions = Sessions(engine, ApiKeys(engine, ttl=0), lifetime_seconds=60, clock=lambda: now[0])
    token = sessions.sign_in(admin_key)
    assert sessions.find(token) is not None
    now[0] += timedelta(seconds=61)
    assert sessions.find(token) is None
    with pytest.raises(Unauthorized):
        sessions.sign_in("hrld_nope")


def test_a_tenant_key_is_forbidden_by_the_session_service(engine: Engine, tenant: Tenant) -> None:
    sessions = Sessions(engine, ApiKeys(engine, ttl=0), lifetime_seconds=60)
    with pytest.raises(Forbidden):
        sessions.sign_in(tenant.key)


def test_admin_key_routes_create_list_and_revoke(
    admin: TestClient, client: TestClient, tenant: Tenant, engine: Engine
) -> None:
    # Tenant keys may not manage keys
    assert client.simulate_get("/v1/admin/keys").status_code == 403
    made = admin.simulate_post(
        "/v1/admin/keys", json={"tenant_id": tenant.id, "name": "ci", "is_admin": False}
    )
    assert made.status_code == 201
    key = made.json["api_key"]
    assert key.startswith(f"hrld_{made.json['prefix']}_")
    assert "key_hash" not in made.json
    listed = admin.simulate_get("/v1/admin/keys", params={"tenant_id": tenant.id}).json["data"]
    assert made.json["id"] in {k["id"] for k in listed}
    # The new key works, and stops working once revoked
    headers = {"Authorization": f"Bearer {key}"}
    assert admin.simulate_get("/v1/posts", headers=headers).status_code == 200
    revoked = admin.simulate_post(f"/v1/admin/keys/{made.json['id']}/revoke")
    assert revoked.json["revoked_at"] is not None
    with pytest.raises(Unauthorized, match="revoked"):  # by every process, once its cache ends
        ApiKeys(engine, ttl=0).authenticate(key)
    assert admin.simulate_post("/v1/admin/keys/nope/revoke").status_code == 404
    # A tenant is made with its first key
    created = admin.simulate_post("/v1/admin/tenants", json={"name": "Ops", "admin": True})
    assert created.status_code == 201 and created.json["key"]["is_admin"]
    names = [t["name"] for t in admin.simulate_get("/v1/admin/tenants").json["data"]]
    assert "Ops" in names
    assert admin.simulate_post("/v1/admin/tenants", json={"name": "  "}).status_code == 422


def test_payloads_are_shown_with_secrets_masked() -> None:
    shown = mask(
        {
            "target_id": "t1",
            "access_token": "abc",
            "nested": {"client_secret": "s", "note": "Authorization: Bearer abcdefghijkl"},
            "list": [{"password": "p"}],
        }
    )
    assert shown["target_id"] == "t1"
    assert shown["access_token"] == shown["nested"]["client_secret"] == MASKED
    assert "abcdefghijkl" not in shown["nested"]["note"]
    assert shown["list"][0]["password"] == MASKED


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0 and percentile([], 0.5) is None


def test_docs_and_assets_are_served_by_herald(browser: TestClient) -> None:
    docs = browser.simulate_get("/docs")
    assert '<script src="/assets/redoc.standalone.js">' in docs.text
    assert "https://" not in docs.text
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    script = browser.simulate_get("/assets/redoc.standalone.js")
    assert script.status_code == 200 and len(script.content) > 500_000
    assert script.headers["content-type"].startswith("text/javascript")
    again = browser.simulate_get(
        "/assets/redoc.standalone.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    assert "MIT" in browser.simulate_get("/assets/redoc.LICENSE").text
    assert browser.simulate_get("/assets/..%2Fapp.py").status_code == 404
    assert browser.simulate_get("/assets/console.css").status_code == 200


def test_a_failed_target_is_listed_with_its_reason_and_retried(
    browser: TestClient, admin_key: str, make_account, make_post, set_target, client: TestClient
) -> None:
    # Given a post whose target failed for a reason the platform gave
    account = make_account("brand")
    post = make_post([account["id"]], scheduled_at=iso(future(hours=1)))
    target_id = post["targets"][0]["id"]
    set_target(target_id, status="failed", error="duplicate status", finished_at=utcnow())
    cookie, csrf = session_of(browser, admin_key)
    # When the operator opens the posts that need a person
    page = browser.simulate_get("/admin/attention", cookies={"herald_console": cookie})
    # I expect it there with the platform's reason, and its timeline one click away
    assert f'data-target="{target_id}"' in page.text and "duplicate status" in page.text
    timeline = browser.simulate_get(
        f"/admin/posts/{post['id']}", cookies={"herald_console": cookie}
    )
    assert timeline.status_code == 200 and "duplicate status" in timeline.text
    # and once retried, it is on its way again
    retried = post_form(browser, f"/admin/posts/{post['id']}/retry", cookie, f"csrf_token={csrf}")
    assert retried.status_code == 303
    assert retried.headers["location"].endswith("done=post-retried%3A1")
    status = client.simulate_get(f"/v1/posts/{post['id']}").json["targets"][0]["status"]
    assert status in ("scheduled", "queued")
    # A second retry has nothing to retry: the page says why instead of failing
    again = post_form(browser, f"/admin/posts/{post['id']}/retry", cookie, f"csrf_token={csrf}")
    assert again.status_code == 409 and "nothing to retry" in again.text
    # and a post that does not exist is a 404 page
    missing = browser.simulate_get("/admin/posts/nope", cookies={"herald_console": cookie})
    assert missing.status_code == 404


def test_a_queue_page_shows_a_dead_letter_with_its_payload_masked(
    browser: TestClient, admin_key: str, broker
) -> None:
    from dramatiq import Message

    # Given a dead letter on the in-process broker, whose payload quotes a token
    message = Message(
        queue_name="publish",
        actor_name="publish_target",
        args=(),
        kwargs={"target_id": "t1", "version": 1, "access_token": "s3cr3t-value"},
        options={},
    )
    broker.dead_letters_by_queue["publish"].append(message)
    cookie, csrf = session_of(browser, admin_key)
    page = browser.simulate_get(
        "/admin/queues/publish?state=failed", cookies={"herald_console": cookie}
    )
    assert page.status_code == 200
    assert "t1" in page.text and "s3cr3t-value" not in page.text and MASKED in page.text
    # Clearing the dead letters drops it
    cleared = post_form(
        browser, "/admin/queues/publish/clear", cookie, f"state=failed&csrf_token={csrf}"
    )
    assert cleared.status_code == 303 and "done=cleared%3A1" in cleared.headers["location"]
    assert not broker.dead_letters_by_queue["publish"]
    # A state that cannot be cleared, and a queue that does not exist, are refused in words
    assert (
        post_form(
            browser, "/admin/queues/publish/clear", cookie, f"state=active&csrf_token={csrf}"
        ).status_code
        == 422
    )
    assert (
        browser.simulate_get("/admin/queues/nope", cookies={"herald_console": cookie}).status_code
        == 404
    )


def test_behind_a_tls_proxy_the_cookies_are_secure(
    settings, engine: Engine, broker, platforms, admin_key: str
) -> None:
    # Given an API whose users reach it over https, through a proxy that hands it plain HTTP
    from herald_api.app import create_app

    behind = settings.model_copy(update={"public_url": "https://herald.example"})
    browser = TestClient(create_app(behind, engine=engine, broker=broker, platforms=platforms))
    # I expect the cookies marked Secure all the same
    signed = sign_in(browser, admin_key)
    assert signed.status_code == 303
    assert signed.cookies[console_sessions.COOKIE].secure
