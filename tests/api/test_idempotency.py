"""Idempotency-Key on creates: a retry gets the first answer, never a second post."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select, update

from herald_api.idempotency import IN_FLIGHT_TIMEOUT, TTL
from herald_common.db import session_scope
from herald_common.models import IdempotencyKey, Post
from herald_common.timeutil import utcnow
from tests.api.conftest import fields_of


def _posts(engine) -> int:
    with session_scope(engine) as session:
        return session.execute(select(func.count()).select_from(Post)).scalar_one()


def _create(client, account_id: str, key: str, content: str = "Hello"):
    return client.simulate_post(
        "/v1/posts",
        json={"content": content, "account_ids": [account_id]},
        headers={"Idempotency-Key": key},
    )


def test_the_same_key_and_body_returns_the_first_answer_and_makes_one_post(
    client, make_account, engine
):
    # Given a create sent with a key
    account = make_account()
    first = _create(client, account["id"], "k-1")
    assert first.status_code == 201

    # When the client sends it again with the same key
    again = _create(client, account["id"], "k-1")

    # I expect the first answer again (status, body, Location), marked as replayed, one post
    assert again.status_code == 201
    assert again.json == first.json
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _posts(engine) == 1


def test_the_same_key_with_another_body_is_a_422_naming_the_header(client, make_account, engine):
    # Given a key already used for one post
    account = make_account()
    assert _create(client, account["id"], "k-2", "Hello").status_code == 201

    # When it comes with another body
    result = _create(client, account["id"], "k-2", "Something else")

    # I expect a 422 naming the header, and nothing created
    assert result.status_code == 422
    assert "Idempotency-Key" in fields_of(result)
    assert _posts(engine) == 1


def test_a_key_still_running_is_a_409(client, make_account, engine, tenant):
    # Given a request that took the key and has not answered yet
    account = make_account()
    first = _create(client, account["id"], "k-3")
    with engine.begin() as db:
        db.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == "k-3")  # type: ignore[arg-type]
            .values(status_code=None, response_body=None)
        )

    # When the same request arrives
    result = _create(client, account["id"], "k-3")

    # I expect a 409 and nothing created
    assert first.status_code == 201
    assert result.status_code == 409
    assert "still running" in result.json["error"]["message"]
    assert _posts(engine) == 1


def test_a_key_held_by_a_request_that_died_or_expired_runs_again(client, make_account, engine):
    # Given a key taken long ago by a request that never answered, and one past its 24 hours
    account = make_account()
    now = utcnow()
    assert _create(client, account["id"], "k-old").status_code == 201
    with engine.begin() as db:
        db.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == "k-old")  # type: ignore[arg-type]
            .values(created_at=now - TTL - timedelta(seconds=1))
        )
        row = db.execute(select(IdempotencyKey.tenant_id)).first()
        assert row is not None
        db.execute(
            insert(IdempotencyKey).values(
                tenant_id=row.tenant_id,
                key="k-dead",
                fingerprint="whatever it was",
                created_at=now - IN_FLIGHT_TIMEOUT - timedelta(seconds=1),
            )
        )

    # When each key is sent again
    expired = _create(client, account["id"], "k-old")
    dead = _create(client, account["id"], "k-dead")

    # I expect each to run as a new request
    assert expired.status_code == 201 and "Idempotent-Replayed" not in expired.headers
    assert dead.status_code == 201
    assert _posts(engine) == 3


def test_keys_are_per_tenant(client, other_client, make_account, engine):
    # Given a key used by one tenant
    account = make_account()
    assert _create(client, account["id"], "shared").status_code == 201

    # When another tenant sends the same key with its own request
    result = other_client.simulate_post(
        "/v1/brands", json={"name": "Globex"}, headers={"Idempotency-Key": "shared"}
    )

    # I expect it to run for that tenant
    assert result.status_code == 201
    assert "Idempotent-Replayed" not in result.headers


def test_an_error_is_not_kept_so_a_retry_runs_again(client, make_account, engine):
    # Given a create refused (an account that does not exist)
    first = _create(client, "no-such-account", "k-4")
    assert first.status_code == 422

    # When it is sent again with the same key and body
    again = _create(client, "no-such-account", "k-4")
    # I expect it to run again (an error is not replayed) and no key to be kept
    assert again.status_code == 422
    assert "Idempotent-Replayed" not in again.headers
    with session_scope(engine) as session:
        assert session.execute(select(func.count()).select_from(IdempotencyKey)).scalar_one() == 0


def test_every_creating_post_takes_the_key(client, make_account, engine):
    # Given a brand created with a key, and a job started with a key
    brand = client.simulate_post(
        "/v1/brands", json={"name": "Acme"}, headers={"Idempotency-Key": "b-1"}
    )
    again = client.simulate_post(
        "/v1/brands", json={"name": "Acme"}, headers={"Idempotency-Key": "b-1"}
    )
    pull = client.simulate_post("/v1/analytics/pull", json={}, headers={"Idempotency-Key": "p-1"})
    pull_again = client.simulate_post(
        "/v1/analytics/pull", json={}, headers={"Idempotency-Key": "p-1"}
    )

    # I expect one brand and one job
    assert brand.status_code == 201 and again.json["id"] == brand.json["id"]
    assert pull.status_code == 202 and pull_again.json["id"] == pull.json["id"]
    assert len(client.simulate_get("/v1/brands").json["data"]) == 1


def test_a_malformed_key_is_a_422_naming_the_header(client, make_account):
    account = make_account()
    result = _create(client, account["id"], "x" * 256)
    assert result.status_code == 422
    assert "Idempotency-Key" in fields_of(result)
