"""The module the `dramatiq` command loads: sets the broker and declares the actors."""

from __future__ import annotations

import dramatiq

from herald_common.platforms import PlatformRegistry
from herald_common.settings import get_settings
from herald_common.webhooks import Events
from herald_common.workers import configure_logging, lazy, process_engine, worker_broker
from herald_publisher.actors import declare_actors
from herald_publisher.publishing import Publisher, publish_pacer

settings = get_settings()
configure_logging(settings)
broker = worker_broker(settings)
dramatiq.set_broker(broker)


@lazy
def publisher() -> Publisher:
    """This process's Publisher, built on first message."""
    engine = process_engine()
    return Publisher(
        engine=engine,
        platforms=PlatformRegistry(engine, settings),
        settings=settings,
        pacer=publish_pacer(broker, settings),
        events=Events(engine, broker, settings),
    )


publish_target = declare_actors(broker, publisher)
