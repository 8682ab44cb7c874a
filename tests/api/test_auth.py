"""API keys: every private route needs a valid, unrevoked key of the caller's tenant."""

from __future__ import annotations

import hashlib

import pytest
from falcon.testing import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from herald_api.auth import issue_api_key
from herald_common.db import session_scope
from herald_common.models import ApiKey
from herald_common.timeutil import utcnow

from .conftest import Tenant


def test_a_key_is_stored_only_as_its_hash(engine: Engine, tenant: Tenant) -> None:
    # Given a key issued for the tenant
    with session_scope(engine) as session:
        key = issue_api_key(session, tenant.id, name="ci")

    # I expect it to read hrld_<12-char prefix>_<secret> and the row to keep only its SHA-256
    scheme, prefix, secret = key[:4], key[5:17], key[18:]
    assert scheme == "hrld" and key[4] == "_" and key[17] == "_"
    assert len(secret) >= 32
    with session_scope(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.name == "ci"
    assert key not in (row.prefix, row.key_hash)


def test_a_valid_key_is_accepted(client: TestClient) -> None:
    # When the tenant lists its accounts with its key
    result = client.simulate_get("/v1/accounts")

    # I expect an empty list
    assert result.status_code == 200
    assert result.json == {"data": []}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-herald-key",
        "Bearer hrld_AAAAAAAAAAAA_" + "x" * 43,
    ],
)
def test_a_missing_or_wrong_key_is_401(anonymous: TestClient, authorization: str | None) -> None:
    # Given a request without a usable key
    headers = {"Authorization": authorization} if authorization is not None else {}

    # When it asks for a private route
    result = anonymous.simulate_get("/v1/posts", headers=headers)

    # I expect 401, a Bearer challenge, and the error shape
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"] == "Bearer"
    assert result.json["error"]["code"] == "unauthorized"


def test_a_key_with_a_wrong_secret_is_401(anonymous: TestClient, tenant: Tenant) -> None:
    # Given the tenant's real prefix with another secret
    forged = tenant.key[:18] + ("A" if tenant.key[18] != "A" else "B") + tenant.key[19:]

    # When it is used
    result = anonymous.simulate_get("/v1/posts", headers={"Authorization": f"Bearer {forged}"})

    # I expect 401
    assert result.status_code == 401
    assert result.json["error"]["message"] == "invalid API key"


def test_a_revoked_key_is_401(engine: Engine, anonymous: TestClient, tenant: Tenant) -> None:
    # Given the tenant's key, revoked
    with session_scope(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.tenant_id == tenant.id)).one()
        row.revoked_at = utcnow()
        session.add(row)

    # When it is used
    result = anonymous.simulate_get("/v1/posts", headers=tenant.headers)

    # I expect 401 saying it was revoked
    assert result.status_code == 401
    assert "revoked" in result.json["error"]["message"]


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/docs"])
def test_public_routes_need_no_key(anonymous: TestClient, path: str) -> None:
    # When a public route is asked without a key
    result = anonymous.simulate_get(path)

    # I expect it to answer
    assert result.status_code == 200
