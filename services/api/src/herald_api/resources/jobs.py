"""/v1/jobs: the tenant's background jobs; /v1/admin/test-jobs: seed 003's test endpoints."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_object, parse_query
from herald_api.routing import Operation, Route
from herald_api.schemas.jobs import JobListQuery, JobOut, JobPage, TestJobOut
from herald_api.services import jobs
from herald_common.contracts import CONTRACTS
from herald_common.db import session_scope
from herald_common.errors import NotFound
from herald_common.models import Job
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings

#: Seed 003's job names that have a test endpoint (every contract but publishing and refresh,
#: which have their own admin routes, and webhook deliveries, which are a tenant's events).
TEST_JOBS = tuple(
    c.job_name for c in CONTRACTS if c.queue not in ("publish", "token-refresh", "webhooks")
)


def accepted(resp: falcon.Response, job: Job) -> None:
    """Answer 202 with the job a request started, and where to poll it."""
    resp.status = 202
    resp.location = f"/v1/jobs/{job.id}"
    resp.media = JobOut.model_validate(job).model_dump(mode="json")


class JobCollection:
    """GET /v1/jobs"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, JobListQuery)
        with session_scope(self._engine) as session:
            rows, next_cursor = jobs.list_jobs(
                session,
                req.context.tenant_id,
                kind=query.kind,
                status=query.status,
                limit=query.limit,
                cursor=query.cursor,
            )
            page = JobPage(data=[JobOut.model_validate(r) for r in rows], next_cursor=next_cursor)
        resp.media = page.model_dump(mode="json")


class JobItem:
    """GET /v1/jobs/{job_id}"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        with session_scope(self._engine) as session:
            job = jobs.get_job(session, req.context.tenant_id, job_id)
            resp.media = JobOut.model_validate(job).model_dump(mode="json")


class TestJob:
    """POST /v1/admin/test-jobs/{job_name}: enqueue one job with the payload given."""

    def __init__(self, engine: Engine, broker: Broker) -> None:
        self._engine = engine
        self._broker = broker

    def on_post(self, req: falcon.Request, resp: falcon.Response, job_name: str) -> None:
        if job_name not in TEST_JOBS:
            raise NotFound(f"no test job named {job_name!r} (test jobs: {', '.join(TEST_JOBS)})")
        payload = parse_object(req)
        out = jobs.enqueue_test_job(self._engine, self._broker, job_name, payload)
        resp.status = 202
        resp.media = TestJobOut.model_validate(out).model_dump(mode="json")


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The jobs routes."""
    return [
        Route(
            "/v1/jobs",
            JobCollection(engine),
            (Operation("get", "List background jobs, newest first", JobPage, query=JobListQuery),),
            tag="jobs",
        ),
        Route(
            "/v1/jobs/{job_id}",
            JobItem(engine),
            (
                Operation(
                    "get",
                    "A background job: state, progress, result or error",
                    JobOut,
                    description="Poll it while it runs: `progress` of `total` grows as the "
                    "work is done; `result` says what it made.",
                ),
            ),
            tag="jobs",
        ),
        Route(
            "/v1/admin/test-jobs/{job_name}",
            TestJob(engine, broker),
            (
                Operation(
                    "post",
                    "Enqueue one job of a kind with the given payload (admin keys)",
                    TestJobOut,
                    status=202,
                    errors=(403, 404, 422, 503),
                    description="Seed 003's test endpoints: `job_name` is one of "
                    + ", ".join(f"`{name}`" for name in TEST_JOBS)
                    + ". The body is the message's payload, `tenant_id` included; it is "
                    "checked against the queue's contract (422 naming the field) before "
                    "anything is enqueued.",
                ),
            ),
            tag="admin",
        ),
    ]
