"""herald-admin: migrate and create-tenant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from falcon.testing import TestClient
from sqlmodel import select

from herald_api.app import create_app
from herald_api.auth import create_tenant
from herald_api.cli import main
from herald_common.broker import build_broker
from herald_common.crypto import CredentialBox, CredentialsUnavailable, generate_key
from herald_common.db import create_db_engine, migrations_current, session_scope
from herald_common.models import Account
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


def test_rotating_to_a_new_key_keeps_every_account(
    database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given accounts whose secrets were sealed with an old key
    assert main(["migrate"]) == 0
    old, new = generate_key(), generate_key()
    engine = create_db_engine(database)
    with session_scope(engine) as session:
        tenant, _ = create_tenant(session, "Acme")
        for n in range(3):
            session.add(
                Account(
                    tenant_id=tenant.id,
                    platform="mastodon",
                    handle=f"a{n}",
                    credentials=CredentialBox(old).seal({"access_token": f"token-{n}"}),
                )
            )
        session.add(Account(tenant_id=tenant.id, platform="sandbox", handle="no-secrets"))
    capsys.readouterr()

    # When the new key is put first and the credentials are rotated
    monkeypatch.setenv("HERALD_SECRET_KEYS", f"{new},{old}")
    get_settings.cache_clear()
    assert main(["rotate-credentials"]) == 0

    # Then all three were rewritten, and the new key alone opens each to its token
    assert json.loads(capsys.readouterr().out) == {"rotated": 3}
    with session_scope(engine) as session:
        stored = session.exec(select(Account).order_by(Account.handle)).all()
    only_new = CredentialBox(new)
    assert [only_new.open(a.credentials) for a in stored if a.credentials] == [
        {"access_token": f"token-{n}"} for n in range(3)
    ]
    with pytest.raises(CredentialsUnavailable):
        CredentialBox(old).open(stored[0].credentials)
    engine.dispose()


def test_generate_key_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert CredentialBox(key).open(CredentialBox(key).seal({"a": "b"})) == {"a": "b"}


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as raised:
        CredentialBox("not-a-fernet-key-secret")
    assert "not-a-fernet-key-secret" not in str(raised.value)


def test_keys_are_listed_made_and_revoked(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tenant with an admin key, made the way the README says
    assert main(["migrate"]) == 0
    assert main(["create-tenant", "--name", "Ops", "--admin"]) == 0
    capsys.readouterr()
    assert main(["list-tenants"]) == 0
    [ops] = json.loads(capsys.readouterr().out)["data"]
    assert (ops["name"], ops["active_keys"], ops["admin_keys"]) == ("Ops", 1, 1)
    # When a second key is made and listed
    assert main(["create-key", "--tenant-id", ops["id"], "--name", "ci"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["api_key"].startswith(f"hrld_{made['prefix']}_") and not made["is_admin"]
    assert main(["list-keys", "--tenant-id", ops["id"]]) == 0
    listed = json.loads(capsys.readouterr().out)["data"]
    assert {k["name"] for k in listed} == {"default", "ci"}
    assert all("api_key" not in k and "key_hash" not in k for k in listed)
    # Then revoking it marks it revoked, and an unknown id is an error in words
    assert main(["revoke-key", made["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"] is not None
    assert main(["revoke-key", "nope"]) == 1
    assert "no API key nope" in capsys.readouterr().err


def test_queue_commands_need_redis(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue-stats"]) == 2
    assert "REDIS_URL" in capsys.readouterr().err
