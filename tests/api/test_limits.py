"""Fair limits: requests per API key, and jobs in flight per tenant on the shared queues."""

from __future__ import annotations

import pytest
from falcon.testing import TestClient
from sqlalchemy import update

from herald_api.app import create_app
from herald_api.cli import main as admin
from herald_api.limiting import RateLimiter
from herald_common.models import Tenant

IMAGE = {"prompt": "Autumn menu", "width": 1080, "height": 1080}


def _set(engine, tenant_id: str, **values) -> None:
    with engine.begin() as db:
        db.execute(update(Tenant).where(Tenant.id == tenant_id).values(**values))  # type: ignore[arg-type]


def test_a_key_over_its_rate_gets_429_while_another_tenants_goes_on(
    app, engine, tenant, other_tenant
):
    # Given a tenant allowed 3 requests a minute (its own limit), and another on the default
    _set(engine, tenant.id, rate_limit="3/minute")
    client = TestClient(app, headers=tenant.headers)
    other = TestClient(app, headers=other_tenant.headers)

    # When it sends a fourth
    answers = [client.simulate_get("/v1/posts") for _ in range(4)]

    # I expect three answers counting down, then a 429 with when to come back
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    refused = answers[3]
    assert refused.json["error"]["code"] == "too_many_requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Reset"] == refused.headers["Retry-After"]
    # and the other tenant's requests go on
    assert other.simulate_get("/v1/posts").status_code == 200


def test_public_routes_and_unlimited_tenants_are_not_counted(app, engine, tenant, anonymous):
    _set(engine, tenant.id, rate_limit="unlimited")
    client = TestClient(app, headers=tenant.headers)
    assert "RateLimit-Limit" not in client.simulate_get("/v1/posts").headers
    assert "RateLimit-Limit" not in anonymous.simulate_get("/health").headers


@pytest.mark.redis
def test_the_count_is_shared_through_redis(
    settings, engine, broker, platforms, tenant, redis_server_url, redis_namespace
):
    # Given two API processes counting on the same Redis, and a limit of 2 a minute
    _set(engine, tenant.id, rate_limit="2/minute")
    apps = [
        create_app(
            settings,
            engine=engine,
            broker=broker,
            platforms=platforms,
            rate_limiter=RateLimiter(redis_server_url, "", namespace=redis_namespace),
        )
        for _ in range(2)
    ]
    first, second = (TestClient(app, headers=tenant.headers) for app in apps)

    # When each serves requests of the same key
    codes = [
        first.simulate_get("/v1/posts").status_code,
        second.simulate_get("/v1/posts").status_code,
    ]
    codes.append(first.simulate_get("/v1/posts").status_code)

    # I expect the third refused, whichever process serves it
    assert codes == [200, 200, 429]


def test_redis_away_lets_requests_through(settings, engine, broker, platforms, tenant):
    # Given a limiter whose Redis cannot be reached
    app = create_app(
        settings,
        engine=engine,
        broker=broker,
        platforms=platforms,
        rate_limiter=RateLimiter("redis://127.0.0.1:1/0", "1/minute"),
    )
    client = TestClient(app, headers=tenant.headers)

    # I expect requests served (the API keeps accepting work without Redis)
    assert [client.simulate_get("/v1/posts").status_code for _ in range(3)] == [200] * 3


def test_a_tenant_at_its_jobs_limit_gets_429_while_another_tenants_jobs_go_on(
    app, engine, tenant, other_tenant, broker
):
    # Given a tenant allowed 2 jobs in flight per queue, with 2 images queued
    _set(engine, tenant.id, max_active_jobs=2)
    client = TestClient(app, headers=tenant.headers)
    other = TestClient(app, headers=other_tenant.headers)
    assert [client.simulate_post("/v1/images", json=IMAGE).status_code for _ in range(2)] == [
        202,
        202,
    ]

    # When it asks for a third image, and for an analytics pull (another queue)
    third = client.simulate_post("/v1/images", json=IMAGE)
    pull = client.simulate_post("/v1/analytics/pull", json={})

    # I expect the image refused with the reason, the pull accepted, and the other tenant's
    # image accepted
    assert third.status_code == 429
    assert "2 jobs queued or running on the image queue" in third.json["error"]["message"]
    assert third.headers["Retry-After"]
    assert pull.status_code == 202
    assert other.simulate_post("/v1/images", json=IMAGE).status_code == 202


def test_the_admin_cli_sets_a_tenants_limits(engine, settings, tenant, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    from herald_common.settings import get_settings

    get_settings.cache_clear()
    try:
        assert (
            admin(
                [
                    "set-limits",
                    "--tenant-id",
                    tenant.id,
                    "--rate-limit",
                    "10/second",
                    "--max-active-jobs",
                    "5",
                ]
            )
            == 0
        )
        assert admin(["set-limits", "--tenant-id", tenant.id, "--rate-limit", "often"]) == 2
    finally:
        get_settings.cache_clear()
    with engine.connect() as db:
        row = db.execute(Tenant.__table__.select().where(Tenant.__table__.c.id == tenant.id)).one()  # type: ignore[attr-defined]
    assert (row.rate_limit, row.max_active_jobs) == ("10/second", 5)
