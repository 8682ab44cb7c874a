"""Fixtures for the API: a fresh migrated SQLite file per test, the stub broker, real keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import falcon
import pytest
from dramatiq.brokers.stub import StubBroker
from falcon.testing import TestClient
from sqlalchemy import update
from sqlalchemy.engine import Engine

from herald_api.app import create_app
from herald_api.auth import create_tenant, issue_api_key
from herald_common.broker import build_broker
from herald_common.crypto import generate_key
from herald_common.db import create_db_engine, migrate, session_scope
from herald_common.lifecycle import lock_post, refresh_post_status
from herald_common.models import Target
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from herald_common.timeutil import utcnow


@dataclass(frozen=True)
class Tenant:
    """A tenant made through herald_api.auth, and its plaintext key."""

    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def api_settings(root: Path, **overrides: Any) -> Settings:
    """Settings of an API on a SQLite file under `root`; no Redis, whatever the environment
    says: the broker is Dramatiq's in-process stub."""
    return Settings(
        database_url=f"sqlite:///{root / 'herald.db'}",
        redis_url=None,
        redis_host=None,
        HERALD_SECRET_KEYS=generate_key(),
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return api_settings(tmp_path)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings.database_url)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def broker(settings: Settings) -> StubBroker:
    broker = build_broker(settings)
    assert isinstance(broker, StubBroker)
    return broker


@pytest.fixture
def platforms(engine: Engine, settings: Settings) -> Iterator[PlatformRegistry]:
    registry = PlatformRegistry(engine, settings)
    yield registry
    registry.close()


@pytest.fixture
def app(
    settings: Settings, engine: Engine, broker: StubBroker, platforms: PlatformRegistry
) -> falcon.App:
    return create_app(settings, engine=engine, broker=broker, platforms=platforms)


def _make_tenant(engine: Engine, name: str) -> Tenant:
    with session_scope(engine) as session:
        tenant, key = create_tenant(session, name)
    return Tenant(tenant.id, key)


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return _make_tenant(engine, "acme")


@pytest.fixture
def other_tenant(engine: Engine) -> Tenant:
    return _make_tenant(engine, "globex")


@pytest.fixture
def client(app: falcon.App, tenant: Tenant) -> TestClient:
    """A client that sends the tenant's key on every request."""
    return TestClient(app, headers=tenant.headers)


@pytest.fixture
def admin(app: falcon.App, engine: Engine, tenant: Tenant) -> TestClient:
    """A client with an admin key of the tenant (the /v1/admin/ routes)."""
    with session_scope(engine) as session:
        key = issue_api_key(session, tenant.id, name="ops", is_admin=True)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def anonymous(app: falcon.App) -> TestClient:
    """A client without a key."""
    return TestClient(app)


@pytest.fixture
def other_client(app: falcon.App, other_tenant: Tenant) -> TestClient:
    return TestClient(app, headers=other_tenant.headers)


def iso(when: datetime) -> str:
    return when.isoformat()


def future(**delta: float) -> datetime:
    """An aware UTC time ahead of now (one day by default)."""
    return datetime.now(UTC) + timedelta(**(delta or {"days": 1}))


def fields_of(result: Any) -> dict[str, str]:
    """The field errors of an error response, as {field: reason}."""
    return {f["field"]: f["reason"] for f in result.json["error"]["fields"]}


@pytest.fixture
def make_account(client: TestClient) -> Callable[..., dict[str, Any]]:
    def make(handle: str = "demo", **extra: Any) -> dict[str, Any]:
        result = client.simulate_post(
            "/v1/accounts", json={"platform": "sandbox", "handle": handle, **extra}
        )
        assert result.status_code == 201, result.json
        return result.json

    return make


@pytest.fixture
def make_post(client: TestClient) -> Callable[..., dict[str, Any]]:
    def make(account_ids: list[str], **body: Any) -> dict[str, Any]:
        result = client.simulate_post(
            "/v1/posts", json={"content": "Hello from Herald", "account_ids": account_ids, **body}
        )
        assert result.status_code == 201, result.json
        return result.json

    return make


@pytest.fixture
def set_target(engine: Engine) -> Callable[..., None]:
    """Move a target as a worker would (the API never does this itself)."""

    def move(target_id: str, **values: Any) -> None:
        with session_scope(engine) as session:
            post_id = session.get_one(Target, target_id).post_id
            post = lock_post(session, post_id)
            session.execute(update(Target).where(Target.id == target_id).values(**values))
            assert post is not None
            refresh_post_status(session, post_id, utcnow())

    return move
