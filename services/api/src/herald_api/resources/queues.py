"""/v1/admin/queues…: what each queue holds, and acting on it (admin keys only: the auth
middleware refuses others on every /v1/admin/ route)."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker

from herald_api.parsing import parse_body, parse_query
from herald_api.schemas import (
    ClearedOut,
    ClearQuery,
    QueueActionBody,
    QueueActionOut,
    QueueDetailOut,
    QueueJobsQuery,
    QueueList,
    RetriedOut,
    RetryFailedBody,
)
from herald_api.services import queues
from herald_common.queues import queue_store
from herald_common.settings import Settings


class QueueCollection:
    """GET /v1/admin/queues: every queue's counts."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self._broker = broker
        self._settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = queues.list_queues(queue_store(self._broker), self._settings)
        resp.media = QueueList.model_validate({"data": data}).model_dump(mode="json")


class QueueItem:
    """One queue: its jobs by state, retrying dead letters, clearing a state, seed actions."""

    def __init__(self, broker: Broker, settings: Settings) -> None:
        self._broker = broker
        self._settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        query = parse_query(req, QueueJobsQuery)
        detail = queues.queue_detail(
            queue_store(self._broker),
            self._settings,
            name,
            state=query.state,
            offset=query.offset,
            limit=query.limit,
        )
        resp.media = QueueDetailOut.model_validate(detail).model_dump(mode="json")

    def on_delete(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        query = parse_query(req, ClearQuery)
        cleared = queues.clear(queue_store(self._broker), name, query.state)
        resp.media = ClearedOut.model_validate(cleared).model_dump(mode="json")

    def on_post_retry(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        body = parse_body(req, RetryFailedBody)
        retried = queues.retry_failed(queue_store(self._broker), name, body.ids)
        resp.media = RetriedOut.model_validate(retried).model_dump(mode="json")

    def on_post_action(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        body = parse_body(req, QueueActionBody)
        result = queues.run_action(queue_store(self._broker), name, body.action, body.job_ids)
        resp.media = QueueActionOut.model_validate({"action": body.action, **result}).model_dump(
            mode="json"
        )
