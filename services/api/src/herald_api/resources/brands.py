"""brands: routes to be written (issue 6)."""

from __future__ import annotations

from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.routing import Route
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The brands routes."""
    return []
