"""Liveness and readiness."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.services.health import readiness


class Health:
    """GET /health: the process is up (no dependency is asked)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class Ready:
    """GET /ready: 200 when the database, its migrations and the broker are all fine, else 503."""

    def __init__(self, engine: Engine, broker: Broker) -> None:
        self._engine = engine
        self._broker = broker

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        checks = readiness(self._engine, self._broker)
        resp.status = 200 if checks["status"] == "ready" else 503
        resp.media = checks
