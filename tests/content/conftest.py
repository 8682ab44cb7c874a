"""Fixtures for the content tests: a database (SQLite, and PostgreSQL where marked), the real
platform registry, a tenant with a brand and accounts, and a fake chat-completions server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from herald_common.db import session_scope
from herald_common.models import Account, Brand
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings
from tests.conftest import add_tenant, make_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The job tests run on both databases."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)


@pytest.fixture
def settings() -> Settings:
    return make_settings(content_max_attempts=3)


@pytest.fixture
def registry(engine: Engine, settings: Settings) -> Iterator[PlatformRegistry]:
    platforms = PlatformRegistry(engine, settings)
    yield platforms
    platforms.close()


@pytest.fixture
def tenant_id(engine: Engine) -> str:
    return add_tenant(engine)


@pytest.fixture
def make_account(engine: Engine, tenant_id: str) -> Callable[..., str]:
    def make(platform: str = "sandbox", handle: str = "demo", **settings: Any) -> str:
        with session_scope(engine) as session:
            account = Account(
                tenant_id=tenant_id, platform=platform, handle=handle, settings=settings
            )
            session.add(account)
        return account.id

    return make


@pytest.fixture
def make_brand(engine: Engine, tenant_id: str) -> Callable[..., Brand]:
    def make(**fields: Any) -> Brand:
        values: dict[str, Any] = {
            "name": "Bean There Coffee",
            "tone": "warm and playful",
            "topics": ["home brewing", "latte art", "ethical sourcing"],
            "hashtags": ["#coffee", "#BeanThere"],
            "timezone": "Europe/Paris",
        }
        values.update(fields)
        with session_scope(engine) as session:
            brand = Brand(tenant_id=tenant_id, **values)
            session.add(brand)
        return brand

    return make
