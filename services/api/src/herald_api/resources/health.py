"""Liveness, readiness, metrics and the admin health report."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.schemas import AdminHealthOut
from herald_api.services.health import readiness
from herald_api.services.queues import UNHEALTHY, admin_health
from herald_common.metrics import exposition
from herald_common.queues import queue_store
from herald_common.settings import Settings


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


class Metrics:
    """GET /metrics: Prometheus samples of every process of this API (all gunicorn workers)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body, content_type = exposition()
        resp.data = body
        resp.content_type = content_type


class AdminHealth:
    """GET /v1/admin/health: healthy, degraded or unhealthy, per queue and overall, with the
    reasons; 503 when unhealthy, so it can be probed as it is."""

    def __init__(self, engine: Engine, broker: Broker, settings: Settings) -> None:
        self._engine = engine
        self._broker = broker
        self._settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        report = admin_health(self._engine, self._broker, queue_store(self._broker), self._settings)
        resp.status = 503 if report["status"] == UNHEALTHY else 200
        resp.media = AdminHealthOut.model_validate(report).model_dump(mode="json")
