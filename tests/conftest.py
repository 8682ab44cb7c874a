"""Fixtures that build real objects: migrated databases, brokers, tenants, accounts.

PostgreSQL and Redis are the machine's own servers (HERALD_TEST_POSTGRES_URL,
HERALD_TEST_REDIS_URL). A test that needs one fails, never skips, when it cannot reach it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from herald_common.db import create_db_engine, migrate, normalize_url, session_scope
from herald_common.hot import Hot
from herald_common.models import Account, Post, PostStatus, Target, TargetStatus, Tenant
from herald_common.platforms import PublishResult
from herald_common.settings import Settings
from herald_common.timeutil import utcnow

PG_ADMIN_URL = os.environ.get(
    "HERALD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, schema built by the migrations."""
    admin_url = normalize_url(PG_ADMIN_URL)
    name = f"herald_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}", pytrace=False)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} CASCADE"))


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on the session's PostgreSQL database, emptied before each test."""
    engine = create_db_engine(pg_url)
    _truncate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine on a new SQLite file, schema built by the migrations."""
    engine = create_db_engine(f"sqlite:///{tmp_path / 'herald.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The machine's Redis, checked once."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}", pytrace=False)
    return REDIS_URL


@pytest.fixture
def redis_namespace(redis_server_url: str) -> Iterator[str]:
    """A key namespace of this test's own on the shared Redis, deleted afterwards."""
    namespace = f"herald-test-{uuid.uuid4().hex[:10]}"
    yield namespace
    client = redis.Redis.from_url(redis_server_url)
    keys = list(client.scan_iter(f"{namespace}*", count=1000))
    if keys:
        client.delete(*keys)


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: nothing read from the environment but what is given here."""
    values: dict[str, object] = {"HERALD_ENV": "test", "redis_url": None}
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings() -> Settings:
    """Settings for unit tests: SQLite, in-process broker."""
    return make_settings()


def add_tenant(engine: Engine, name: str = "Acme") -> str:
    """A new tenant's id."""
    with session_scope(engine) as session:
        tenant = Tenant(name=name)
        session.add(tenant)
    return tenant.id


def add_account(
    engine: Engine, tenant_id: str, *, handle: str = "demo", settings: dict | None = None
) -> str:
    """A new sandbox account's id."""
    with session_scope(engine) as session:
        account = Account(
            tenant_id=tenant_id, platform="sandbox", handle=handle, settings=settings or {}
        )
        session.add(account)
    return account.id


def add_post(
    engine: Engine,
    tenant_id: str,
    account_ids: list[str],
    *,
    due_at: datetime | None = None,
    content: str = "Hello",
) -> tuple[str, list[str]]:
    """A scheduled post with one target per account: (post id, target ids)."""
    due_at = due_at or utcnow() - timedelta(seconds=1)
    with session_scope(engine) as session:
        post = Post(
            tenant_id=tenant_id, content=content, status=PostStatus.SCHEDULED, scheduled_at=due_at
        )
        session.add(post)
        session.flush()
        targets = [
            Target(
                tenant_id=tenant_id,
                post_id=post.id,
                account_id=account_id,
                platform="sandbox",
                status=TargetStatus.SCHEDULED,
                due_at=due_at,
            )
            for account_id in account_ids
        ]
        session.add_all(targets)
    return post.id, [t.id for t in targets]


def stored(engine: Engine, result: PublishResult) -> PublishResult:
    """A publish result as the publisher keeps it: the platform's own bookkeeping (the
    sandbox's delivery row) written in a transaction of its own."""
    if result.with_outcome is None:
        return result
    with Hot(engine).transaction() as db:
        result.with_outcome(db, None)
    return replace(result, with_outcome=None)
