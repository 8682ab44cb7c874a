"""API keys: every private route needs a valid, unrevoked key of the caller's tenant."""

from __future__ import annotations

import hashlib

import falcon
import pytest
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from herald_api.app import create_app
from herald_api.auth import ApiKeys, hash_key, issue_api_key
from herald_common.db import session_scope
from herald_common.models import ApiKey
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
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


# --- the per-process cache of key rows ----------------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(engine: Engine, clock: Clock) -> ApiKeys:
    return ApiKeys(engine, ttl=5.0, clock=clock)


@pytest.fixture
def cached_app(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    platforms: PlatformRegistry,
    keys: ApiKeys,
) -> falcon.App:
    return create_app(settings, engine=engine, broker=broker, platforms=platforms, api_keys=keys)


def _revoke(engine: Engine, key: str) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(ApiKey).where(col(ApiKey.prefix) == _prefix(key)).values(revoked_at=utcnow())
        )


def _prefix(key: str) -> str:
    return key[5:17]


def _status(app: falcon.App, key: str) -> int:
    result = TestClient(app).simulate_get(
        "/v1/accounts", headers={"Authorization": f"Bearer {key}"}
    )
    return result.status_code


def test_a_key_revoked_in_the_database_stops_working_within_the_cache_time(
    cached_app: falcon.App, engine: Engine, clock: Clock, tenant: Tenant
) -> None:
    # Given a key the API has just read (cached for 5 s), then revoked in the database
    assert _status(cached_app, tenant.key) == 200
    _revoke(engine, tenant.key)

    # When it is used again before and at the end of the 5 s
    clock.now += 4.9
    before = _status(cached_app, tenant.key)
    clock.now += 0.1
    after = TestClient(cached_app).simulate_get("/v1/accounts", headers=tenant.headers)

    # I expect the cached row to let it through until then, and a 401 saying revoked from then
    assert before == 200
    assert after.status_code == 401
    assert "revoked" in after.json["error"]["message"]


def test_a_key_revoked_and_forgotten_in_this_process_stops_at_once(
    cached_app: falcon.App, engine: Engine, keys: ApiKeys, tenant: Tenant
) -> None:
    # Given a key the API has just read
    assert _status(cached_app, tenant.key) == 200

    # When it is revoked and this process forgets its row, with no time passing
    _revoke(engine, tenant.key)
    keys.forget(_prefix(tenant.key))

    # I expect the very next request refused
    assert _status(cached_app, tenant.key) == 401


def test_a_row_read_while_its_key_is_forgotten_is_not_kept(
    cached_app: falcon.App, engine: Engine, keys: ApiKeys, tenant: Tenant
) -> None:
    # Given a request whose read of its key's row overlaps that key being forgotten (revoked
    # in this process: the revocation committed, then forget, while the read was in flight)
    forgotten: list[str] = []

    def forget_once(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "api_keys" in statement and not forgotten:
            forgotten.append(_prefix(tenant.key))
            keys.forget(_prefix(tenant.key))

    event.listen(engine, "after_cursor_execute", forget_once)
    assert _status(cached_app, tenant.key) == 200
    assert forgotten

    # When the key is used again, no time passing, its revocation now in the database
    _revoke(engine, tenant.key)

    # I expect it read again and refused: the row read before the forget was not kept
    assert _status(cached_app, tenant.key) == 401


def test_a_revoked_key_stays_refused_from_the_cache(
    cached_app: falcon.App, engine: Engine, clock: Clock, tenant: Tenant
) -> None:
    # Given a revoked key the API has read once
    _revoke(engine, tenant.key)
    assert _status(cached_app, tenant.key) == 401

    # When it is used again, within the cache time and after it
    within = _status(cached_app, tenant.key)
    clock.now += 60
    later = _status(cached_app, tenant.key)

    # I expect it refused both times
    assert (within, later) == (401, 401)


def test_a_wrong_secret_is_refused_even_when_its_prefix_is_cached(
    cached_app: falcon.App, tenant: Tenant
) -> None:
    # Given the tenant's key, cached
    assert _status(cached_app, tenant.key) == 200

    # When its prefix is sent with another secret
    forged = tenant.key[:18] + ("A" if tenant.key[18] != "A" else "B") + tenant.key[19:]

    # I expect 401
    assert _status(cached_app, forged) == 401


def test_an_unknown_key_is_not_cached(
    cached_app: falcon.App, engine: Engine, tenant: Tenant
) -> None:
    # Given a well-formed key that no row has, refused
    key = "hrld_Unknown12345_" + "s" * 43
    assert _status(cached_app, key) == 401

    # When a row for it appears, with no time passing
    with session_scope(engine) as session:
        session.add(ApiKey(tenant_id=tenant.id, prefix=_prefix(key), key_hash=hash_key(key)))

    # I expect it accepted at once: a miss is never remembered
    assert _status(cached_app, key) == 200


def test_the_cache_keeps_at_most_its_size_dropping_the_oldest_read(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    platforms: PlatformRegistry,
    clock: Clock,
    tenant: Tenant,
) -> None:
    # Given a cache of two rows, and three keys read in turn
    keys = ApiKeys(engine, ttl=60.0, size=2, clock=clock)
    app = create_app(settings, engine=engine, broker=broker, platforms=platforms, api_keys=keys)
    with session_scope(engine) as session:
        second = issue_api_key(session, tenant.id, name="second")
        third = issue_api_key(session, tenant.id, name="third")
    assert [_status(app, key) for key in (tenant.key, second, third)] == [200, 200, 200]

    # When all three are revoked, with no time passing
    for key in (tenant.key, second, third):
        _revoke(engine, key)

    # I expect the last two still cached, and the first read dropped (read again: refused)
    assert [_status(app, key) for key in (third, second, tenant.key)] == [200, 200, 401]


def test_a_cache_time_of_zero_reads_the_key_on_every_request(
    settings: Settings,
    engine: Engine,
    broker: StubBroker,
    platforms: PlatformRegistry,
    clock: Clock,
    tenant: Tenant,
) -> None:
    # Given the cache turned off
    keys = ApiKeys(engine, ttl=0.0, clock=clock)
    app = create_app(settings, engine=engine, broker=broker, platforms=platforms, api_keys=keys)
    assert _status(app, tenant.key) == 200

    # When the key is revoked, with no time passing
    _revoke(engine, tenant.key)

    # I expect the next request refused
    assert _status(app, tenant.key) == 401


def test_the_cache_time_comes_from_api_key_cache_seconds(
    engine: Engine, broker: StubBroker, platforms: PlatformRegistry, tenant: Tenant, tmp_path
) -> None:
    # Given API_KEY_CACHE_SECONDS=0 in the settings the app is built from
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'herald.db'}",
        redis_url=None,
        redis_host=None,
        API_KEY_CACHE_SECONDS="0",
    )
    app = create_app(settings, engine=engine, broker=broker, platforms=platforms)
    assert _status(app, tenant.key) == 200

    # When the key is revoked
    _revoke(engine, tenant.key)

    # I expect the app's own key checker to read it again at once
    assert _status(app, tenant.key) == 401
