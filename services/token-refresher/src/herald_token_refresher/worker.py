"""The module the `dramatiq` command loads: sets the broker and declares the actor."""

from __future__ import annotations

import dramatiq

from herald_common.platforms import PlatformRegistry
from herald_common.settings import get_settings
from herald_common.tokens import TokenKeeper
from herald_common.webhooks import Events
from herald_common.workers import configure_logging, lazy, process_engine, worker_broker
from herald_token_refresher.actors import declare_actors

settings = get_settings()
configure_logging(settings)
broker = worker_broker(settings)
dramatiq.set_broker(broker)


@lazy
def keeper() -> TokenKeeper:
    """This process's TokenKeeper, built on first message."""
    engine = process_engine()
    return TokenKeeper(
        engine=engine,
        platforms=PlatformRegistry(engine, settings),
        settings=settings,
        events=Events(engine, broker, settings),
    )


refresh_account = declare_actors(broker, keeper)
