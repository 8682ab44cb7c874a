"""The module the `dramatiq` command loads: sets the broker and declares the actors."""

from __future__ import annotations

import dramatiq

from herald_common.settings import get_settings
from herald_common.workers import configure_logging, service_deps, worker_broker
from herald_webhooks.actors import declare_actors

settings = get_settings()
configure_logging(settings)
broker = worker_broker(settings)
dramatiq.set_broker(broker)
actors = declare_actors(broker, service_deps(settings, broker))
