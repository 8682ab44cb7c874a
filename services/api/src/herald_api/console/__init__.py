"""The operator's console: web pages under /admin for queues, failures, the posts that need a
person, tenants and keys, and cron — for admin keys only.

Served by the API itself (`create_app` adds these routes), so it reads through the same
services as `/v1/admin/…` with no service of its own to deploy, and its pages are on the
API's origin. The pages are not part of the API: they are left out of the OpenAPI document,
and the API-key middleware passes them by, since they check their own session cookie.
"""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.auth import ApiKeys
from herald_api.console.sessions import Sessions
from herald_api.console.views import (
    Attention,
    Console,
    Cron,
    Home,
    Overview,
    PostPage,
    QueuePage,
    SignIn,
    SignOut,
    Tenants,
)
from herald_common.settings import Settings


@dataclass(frozen=True)
class Page:
    """A console path, the resource serving it and Falcon's responder suffix."""

    path: str
    resource: object
    suffix: str | None = None


def pages(*, engine: Engine, broker: Broker, settings: Settings) -> list[Page]:
    """Every console route."""
    # Sign-in reads the key's row afresh (no cache): a key revoked a second ago opens nothing.
    keys = ApiKeys(engine, ttl=0)
    console = Console(
        engine=engine,
        broker=broker,
        settings=settings,
        sessions=Sessions(engine, keys, lifetime_seconds=settings.console_session_seconds),
    )
    queue, post, tenants = QueuePage(console), PostPage(console), Tenants(console)
    overview = Overview(console)
    return [
        Page("/admin", Home(console)),
        Page("/admin/sign-in", SignIn(console)),
        Page("/admin/sign-out", SignOut(console)),
        Page("/admin/overview", overview),
        Page("/admin/overview/live", overview, "live"),
        Page("/admin/queues/{name}", queue),
        Page("/admin/queues/{name}/retry", queue, "retry"),
        Page("/admin/queues/{name}/clear", queue, "clear"),
        Page("/admin/attention", Attention(console)),
        Page("/admin/posts/{post_id}", post),
        Page("/admin/posts/{post_id}/retry", post, "retry"),
        Page("/admin/posts/{post_id}/targets/{target_id}/resolve", post, "resolve"),
        Page("/admin/tenants", tenants),
        Page("/admin/keys", tenants, "key"),
        Page("/admin/keys/{key_id}/revoke", tenants, "revoke"),
        Page("/admin/cron", Cron(console)),
    ]
