"""Fixtures for the analytics worker: real databases (SQLite and PostgreSQL), a platform
registry whose adapters may reach the local fake servers, and published targets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy.engine import Engine

from herald_common.crypto import generate_key
from herald_common.db import session_scope
from herald_common.models import Account, Post, PostStatus, Target, TargetStatus
from herald_common.platforms import AccountRef, PlatformRegistry, PublishRequest
from herald_common.settings import Settings
from herald_common.timeutil import utcnow
from tests.conftest import make_settings, stored
from tests.platforms.servers import FakeMastodon, running


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each test runs on SQLite and on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
def settings() -> Settings:
    return make_settings(HERALD_SECRET_KEYS=generate_key(), platform_allow_private_addresses=True)


@pytest.fixture
def registry(engine: Engine, settings: Settings) -> Iterator[PlatformRegistry]:
    registry = PlatformRegistry(engine, settings)
    yield registry
    registry.close()


@pytest.fixture
def mastodon() -> Iterator[FakeMastodon]:
    with running(FakeMastodon()) as server:
        yield server  # type: ignore[misc]


def add_account(
    engine: Engine,
    registry: PlatformRegistry,
    tenant_id: str,
    platform: str = "sandbox",
    *,
    settings: dict | None = None,
    credentials: dict | None = None,
) -> str:
    """A connected account's id (its secrets sealed as the API seals them)."""
    with session_scope(engine) as session:
        account = Account(
            tenant_id=tenant_id,
            platform=platform,
            handle=f"{platform}-account",
            settings=settings or {},
            credentials=registry.credentials.seal(credentials) if credentials else None,
        )
        session.add(account)
    return account.id


def add_published(
    engine: Engine,
    registry: PlatformRegistry,
    tenant_id: str,
    account_ids: list[str],
    *,
    published_at: datetime | None = None,
    content: str = "Hello",
) -> tuple[str, list[str]]:
    """A post published to these accounts through their real adapters: (post id, target ids)."""
    published_at = published_at or utcnow()
    post = Post(
        tenant_id=tenant_id, content=content, status=PostStatus.PUBLISHED, published_at=published_at
    )
    targets = []
    for account_id in account_ids:
        with session_scope(engine) as session:
            account = session.get_one(Account, account_id)
        target = Target(
            tenant_id=tenant_id,
            post_id=post.id,
            account_id=account_id,
            platform=account.platform,
            status=TargetStatus.PUBLISHED,
            published_at=published_at,
            metrics_due_at=published_at,
        )
        ref = AccountRef(
            id=account.id,
            tenant_id=tenant_id,
            platform=account.platform,
            handle=account.handle,
            settings=dict(account.settings),
            credentials=registry.credentials_of(account),
        )
        result = registry.get(account.platform).publish(
            PublishRequest(account=ref, idempotency_key=target.id, text=content)
        )
        result = stored(engine, result)  # the sandbox's delivery, as the publisher keeps it
        target.platform_post_id = result.platform_post_id
        target.platform_url = result.url
        targets.append(target)
    with session_scope(engine) as session:
        session.add(post)
        session.flush()
        session.add_all(targets)
    return post.id, [t.id for t in targets]
