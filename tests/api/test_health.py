"""/health and /ready."""

from __future__ import annotations

from pathlib import Path

import falcon
from dramatiq.brokers.redis import RedisBroker
from falcon.testing import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from herald_api.app import create_app
from herald_common.broker import redis_client
from herald_common.db import create_db_engine
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings


def _client(settings: Settings, engine: Engine, broker: object) -> TestClient:
    app: falcon.App = create_app(
        settings,
        engine=engine,
        broker=broker,
        platforms=PlatformRegistry(engine),  # type: ignore[arg-type]
    )
    return TestClient(app)


def test_health(anonymous: TestClient) -> None:
    result = anonymous.simulate_get("/health")

    assert result.status_code == 200
    assert result.json == {"status": "ok"}


def test_ready_when_everything_is_up(anonymous: TestClient) -> None:
    result = anonymous.simulate_get("/ready")

    assert result.status_code == 200
    assert result.json == {
        "status": "ready",
        "database": "ok",
        "migrations": "current",
        "broker": "ok",
    }


def test_not_ready_when_migrations_have_not_run(
    settings: Settings, broker: object, tmp_path: Path
) -> None:
    # Given a database nobody migrated
    engine = create_db_engine(f"sqlite:///{tmp_path / 'empty.db'}")

    # When readiness is asked
    result = _client(settings, engine, broker).simulate_get("/ready")

    # I expect 503 naming the migrations
    assert result.status_code == 503
    assert result.json["status"] == "not_ready"
    assert (result.json["database"], result.json["migrations"]) == ("ok", "behind")


def test_not_ready_when_the_database_is_unreachable(
    settings: Settings, broker: object, tmp_path: Path
) -> None:
    # Given an engine whose database cannot be opened
    engine = create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")

    result = _client(settings, engine, broker).simulate_get("/ready")

    # I expect 503, not 500
    assert result.status_code == 503
    assert result.json["database"] == "unreachable"
    assert result.json["migrations"] == "unknown"


def test_not_ready_when_redis_is_unreachable(settings: Settings, engine: Engine) -> None:
    # Given a Redis broker pointed at a port nothing listens on
    broker = RedisBroker(client=redis_client("redis://127.0.0.1:1/0"))

    result = _client(settings, engine, broker).simulate_get("/ready")

    assert result.status_code == 503
    assert result.json["broker"] == "unreachable"
    assert result.json["database"] == "ok"
