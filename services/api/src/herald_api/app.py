"""The WSGI app: `create_app` wires routes to injected collaborators; `get_app` builds them.

gunicorn runs `'herald_api.app:get_app()'`; nothing is built at import time.
"""

from __future__ import annotations

from typing import Any

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api import console
from herald_api.auth import ApiKeys
from herald_api.errors import add_error_handlers
from herald_api.idempotency import IdempotencyMiddleware, IdempotencyStore
from herald_api.limiting import RateLimiter, TenantLimitsMiddleware
from herald_api.middleware import (
    AuthMiddleware,
    MetricsMiddleware,
    RequestIdMiddleware,
    TextParamsMiddleware,
)
from herald_api.routes import build_routes, check_route, public_paths
from herald_common.broker import build_broker
from herald_common.db import create_db_engine
from herald_common.logs import configure_logging
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings, get_settings


def create_app(
    settings: Settings,
    *,
    engine: Engine,
    broker: Broker,
    platforms: PlatformRegistry,
    api_keys: ApiKeys | None = None,
    rate_limiter: RateLimiter | None = None,
) -> falcon.App:
    """The API, serving the routing table with these collaborators (`api_keys`: the key
    checker, by default one caching rows for API_KEY_CACHE_SECONDS; `rate_limiter`: by
    default on the broker's Redis, or in memory without one)."""
    routes = build_routes(engine=engine, broker=broker, platforms=platforms, settings=settings)
    keys = api_keys or ApiKeys(engine, ttl=settings.api_key_cache_seconds)
    # The console's pages check their own session cookie, not a bearer key.
    pages = console.pages(engine=engine, broker=broker, settings=settings)
    middleware: list[Any] = [
        MetricsMiddleware(),
        RequestIdMiddleware(),
        AuthMiddleware(keys, public_paths(routes) | {page.path for page in pages}),
        TenantLimitsMiddleware(
            rate_limiter or RateLimiter.from_settings(settings),
            max_active_jobs=settings.max_active_jobs_per_tenant,
        ),
        TextParamsMiddleware(),
        IdempotencyMiddleware(IdempotencyStore(engine)),
    ]
    app = falcon.App(middleware=middleware)
    add_error_handlers(app)
    for route in routes:
        check_route(route)
        app.add_route(route.path, route.resource, suffix=route.suffix)
    for page in pages:
        app.add_route(page.path, page.resource, suffix=page.suffix)
    return app


def get_app() -> falcon.App:
    """The API as configured by the environment (gunicorn's entry point)."""
    settings = get_settings()
    configure_logging(settings)
    engine = create_db_engine(settings.database_url, pool_size=settings.database_pool_size)
    broker = build_broker(settings)
    platforms = PlatformRegistry(engine, settings)
    return create_app(settings, engine=engine, broker=broker, platforms=platforms)
