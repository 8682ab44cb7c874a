"""The content queue's actors (to be written)."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import Broker

from herald_common.workers import Deps


def declare_actors(broker: Broker, deps: Deps) -> list[dramatiq.Actor[Any, Any]]:
    """Declare this service's actors on `broker`."""
    return []
