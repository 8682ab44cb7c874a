"""herald-admin: migrate and create-tenant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from falcon.testing import TestClient

from herald_api.app import create_app
from herald_api.cli import main
from herald_common.broker import build_broker
from herald_common.db import create_db_engine, migrations_current
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings, get_settings


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_HOST", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_migrate_then_create_tenant(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    # When the database is migrated
    assert main(["migrate"]) == 0
    engine = create_db_engine(database)
    assert migrations_current(engine)
    capsys.readouterr()

    # And a tenant is created
    assert main(["create-tenant", "--name", "Acme"]) == 0

    # I expect one JSON line with the tenant and a key that works
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    created = json.loads(lines[0])
    assert set(created) == {"tenant_id", "api_key"}
    assert created["api_key"].startswith("hrld_")
    settings = Settings(database_url=database, redis_url=None, redis_host=None)
    app = create_app(
        settings, engine=engine, broker=build_broker(settings), platforms=PlatformRegistry(engine)
    )
    result = TestClient(app).simulate_get(
        "/v1/accounts", headers={"Authorization": f"Bearer {created['api_key']}"}
    )
    assert result.status_code == 200
    engine.dispose()


def test_create_tenant_needs_a_name(database: str) -> None:
    with pytest.raises(SystemExit):
        main(["create-tenant"])
