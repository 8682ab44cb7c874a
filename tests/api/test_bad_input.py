"""No 5xx from any input: each of these once answered 500 (or 202, then failed in a worker)
and is now a 4xx naming the field, with nothing stored or enqueued."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from herald_common.db import create_db_engine, session_scope
from herald_common.logs import redact
from herald_common.models import Account, Brand, Job, Post
from tests.api.conftest import fields_of, future, iso

NUL = "a\x00b"


def _count(engine, model) -> int:
    with session_scope(engine) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


# --- NUL characters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/posts", {"content": NUL, "account_ids": ["x"]}, "content"),
        ("/v1/posts", {"content": "Hi", "account_ids": ["ok", NUL]}, "account_ids.1"),
        ("/v1/brands", {"name": NUL}, "name"),
        ("/v1/accounts", {"platform": "sandbox", "handle": NUL}, "handle"),
        ("/v1/images", {"prompt": NUL, "width": 1080, "height": 1080}, "prompt"),
        ("/v1/accounts", {"platform": "sandbox", "handle": "h", "settings": {NUL: 1}}, "settings"),
    ],
)
def test_a_nul_character_in_a_stored_string_is_a_422_naming_the_field(
    client, engine, broker, path, body, field
):
    # When a body carries a NUL character
    result = client.simulate_post(path, json=body)

    # I expect a 422 naming the field, and nothing stored or enqueued
    assert result.status_code == 422, result.json
    assert field in fields_of(result)
    assert "NUL" in fields_of(result)[field]
    for model in (Post, Brand, Account, Job):
        assert _count(engine, model) == 0
    assert all(not broker.queues[q].qsize() for q in broker.queues)


def test_a_nul_character_in_a_path_id_or_query_is_a_422(client):
    assert fields_of(client.simulate_get("/v1/posts/a%00b")) == {
        "post_id": "contains a NUL character (\\u0000), which cannot be stored"
    }
    assert "status" in fields_of(client.simulate_get("/v1/posts", query_string="status=a%00"))


def test_a_failed_statement_does_not_quote_its_values(tmp_path):
    # Given an engine as Herald builds them, and a statement that fails with a tenant's value
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(DBAPIError) as raised, engine.connect() as db:
        db.execute(text("SELECT * FROM no_such_table WHERE a = :v"), {"v": "secret content"})

    # I expect the error not to carry the value, and what logs and job errors print (redacted)
    # not to carry the statement either
    assert "secret content" not in str(raised.value)
    assert "SELECT" in str(raised.value) and "SELECT" not in redact(str(raised.value))


# --- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "zone"),
    [("9999-12-31T23:59:59-05:00", None), ("0001-01-01T00:00:00", "Asia/Tokyo")],
)
def test_a_time_outside_years_1_to_9999_in_utc_is_a_422(client, make_account, engine, when, zone):
    account = make_account()
    body = {"content": "Hi", "account_ids": [account["id"]], "scheduled_at": when}
    if zone:
        body["timezone"] = zone

    # When a post is created, scheduled or edited with it
    created = client.simulate_post("/v1/posts", json=body)
    draft = client.simulate_post(
        "/v1/posts", json={"content": "Hi", "account_ids": [account["id"]]}
    )
    post_path = f"/v1/posts/{draft.json['id']}"
    timing = {"scheduled_at": when, **({"timezone": zone} if zone else {})}
    scheduled = client.simulate_put(f"{post_path}/schedule", json=timing)
    edited = client.simulate_patch(post_path, json=timing)
    submitted = client.simulate_post(
        f"{post_path}/submit", json={**timing, "approvers": [{"email": "a@b.test"}]}
    )

    # I expect each to be a 422 naming scheduled_at
    for result in (created, scheduled, edited, submitted):
        assert result.status_code == 422, result.json
        assert "years 1 to 9999" in fields_of(result)["scheduled_at"]
    assert _count(engine, Post) == 1


def test_a_due_time_outside_the_years_is_a_422(client, make_account):
    account = make_account()
    draft = client.simulate_post(
        "/v1/posts", json={"content": "Hi", "account_ids": [account["id"]]}
    )
    result = client.simulate_post(
        f"/v1/posts/{draft.json['id']}/submit",
        json={"due_at": "9999-12-31T23:59:59-05:00", "approvers": [{"email": "a@b.test"}]},
    )
    assert result.status_code == 422
    assert "years 1 to 9999" in fields_of(result)["due_at"]


def test_a_post_more_than_ten_years_ahead_is_a_422(client, make_account):
    account = make_account()
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "Hi",
            "account_ids": [account["id"]],
            "scheduled_at": iso(future(days=365 * 20)),
        },
    )
    assert result.status_code == 422
    assert "ahead" in fields_of(result)["scheduled_at"]


def test_analytics_days_at_the_ends_of_the_calendar_are_a_422(client, engine):
    read = client.simulate_get("/v1/analytics", query_string="start=0001-01-01&end=0001-01-02")
    latest = client.simulate_get("/v1/analytics", query_string="end=9999-12-31")
    pull = client.simulate_post("/v1/analytics/pull", json={"start": "0001-01-01"})
    assert (read.status_code, latest.status_code, pull.status_code) == (422, 422, 422)
    assert "start" in fields_of(read) and "end" in fields_of(latest) and "start" in fields_of(pull)
    assert _count(engine, Job) == 0


# --- deep JSON --------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["[" * 100_000, '{"a":' * 200 + "1" + "}" * 200])
def test_deeply_nested_json_is_a_400(client, body):
    result = client.simulate_post(
        "/v1/posts", body=body, headers={"Content-Type": "application/json"}
    )
    assert result.status_code == 400
    assert result.json["error"]["code"] == "malformed_json"
    assert (
        "nested deeper" in result.json["error"]["message"]
        or "JSON" in (result.json["error"]["message"])
    )


# --- addresses --------------------------------------------------------------------------------


def test_a_media_url_on_a_private_host_is_refused_at_creation(client, make_account, engine):
    account = make_account()
    result = client.simulate_post(
        "/v1/posts",
        json={
            "content": "Hi",
            "account_ids": [account["id"]],
            "media": [{"url": "http://localhost:9000/a.png"}],
        },
    )
    assert result.status_code == 422
    reason = fields_of(result)["media.0.url"]
    # It says the name is inward, never what it resolved to
    assert "non-public" in reason and "127.0.0.1" not in result.text
    assert _count(engine, Post) == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/brands",
            {
                "name": "Acme",
                "notification_type": "webhook",
                "webhook_url": "http://169.254.169.254/latest/meta-data",
            },
            "webhook_url",
        ),
        (
            "/v1/accounts",
            {
                "platform": "mastodon",
                "handle": "m",
                "settings": {"instance_url": "https://[::127.0.0.1]"},
            },
            "settings.instance_url",
        ),
        (
            "/v1/accounts/connect/mastodon",
            {"instance_url": "http://localhost:1", "access_token": "t"},
            "instance_url",
        ),
    ],
)
def test_private_hosts_are_refused_at_creation(client, engine, path, body, field):
    result = client.simulate_post(path, json=body)
    assert result.status_code == 422, result.json
    assert "non-public" in fields_of(result)[field]
    assert _count(engine, Brand) == 0 and _count(engine, Account) == 0


# --- admin test jobs --------------------------------------------------------------------------


def test_a_test_job_for_another_tenants_brand_says_so(admin, other_client, engine, tenant):
    # Given another tenant's brand
    brand = other_client.simulate_post("/v1/brands", json={"name": "Globex"}).json

    # When an admin starts a content job for it under its own tenant
    result = admin.simulate_post(
        "/v1/admin/test-jobs/content.generate.monthly",
        json={
            "tenant_id": tenant.id,
            "brand_id": brand["id"],
            "month": 1,
            "year": 2030,
            "count": 3,
            "platforms": ["x"],
        },
    )

    # I expect a 422 saying whose brand it is, and no job
    assert result.status_code == 422
    assert "another tenant" in fields_of(result)["brand_id"]
    assert _count(engine, Job) == 0
