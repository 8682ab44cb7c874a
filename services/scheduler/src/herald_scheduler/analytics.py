"""The scheduler's analytics sweep (to be written)."""

from __future__ import annotations

from datetime import datetime

from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_common.settings import Settings


def sweep(engine: Engine, broker: Broker, settings: Settings, now: datetime) -> int:
    """One pass; how much it did."""
    return 0
