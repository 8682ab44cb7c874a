"""/v1/analytics: pull metrics of published posts, and read them back."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body, parse_query
from herald_api.resources.jobs import accepted
from herald_api.routing import Operation, Route
from herald_api.schemas.analytics import (
    AnalyticsOut,
    AnalyticsPullBody,
    AnalyticsQuery,
    PostAnalyticsOut,
)
from herald_api.schemas.jobs import JobOut
from herald_api.services import analytics
from herald_common.db import session_scope
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings


class AnalyticsCollection:
    """GET /v1/analytics"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, AnalyticsQuery)
        with session_scope(self._engine) as session:
            out = analytics.aggregate(session, req.context.tenant_id, query)
        resp.media = out.model_dump(mode="json")


class AnalyticsPull:
    """POST /v1/analytics/pull"""

    def __init__(self, engine: Engine, broker: Broker) -> None:
        self._engine = engine
        self._broker = broker

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = parse_body(req, AnalyticsPullBody)
        job = analytics.start_pull(
            self._engine,
            self._broker,
            req.context.tenant_id,
            body,
            max_active=req.context.max_active_jobs,
        )
        accepted(resp, job)


class PostAnalytics:
    """GET /v1/posts/{post_id}/analytics"""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def on_get(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        with session_scope(self._engine) as session:
            out = analytics.post_analytics(session, req.context.tenant_id, post_id)
        resp.media = out.model_dump(mode="json")


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The analytics routes."""
    return [
        Route(
            "/v1/analytics",
            AnalyticsCollection(engine),
            (
                Operation(
                    "get",
                    "Metrics per account, platform and day",
                    AnalyticsOut,
                    query=AnalyticsQuery,
                    errors=(422,),
                    description="For each target, its latest snapshot of each UTC day (of the "
                    "whole range when not grouped by day), summed per group: counts are "
                    "cumulative, so they are never added up over time. A metric no platform of "
                    "the group gave is null. The range defaults to the last 30 days and spans at "
                    "most 366.",
                ),
            ),
            tag="analytics",
        ),
        Route(
            "/v1/analytics/pull",
            AnalyticsPull(engine, broker),
            (
                Operation(
                    "post",
                    "Pull the metrics of published posts now",
                    JobOut,
                    status=202,
                    body=AnalyticsPullBody,
                    errors=(422,),
                    description="Starts an `analytics.pull` job: poll /v1/jobs/{job_id}. It "
                    "writes one snapshot per published target (of `post_ids`, published "
                    "between `start` and `end`); its result lists the targets that could not "
                    "be read and why. Herald also pulls on its own: often in a post's first "
                    "day, then daily for ANALYTICS_PULL_MAX_AGE_DAYS.",
                ),
            ),
            tag="analytics",
        ),
        Route(
            "/v1/posts/{post_id}/analytics",
            PostAnalytics(engine),
            (
                Operation(
                    "get",
                    "A post's metrics over time, per target, and its latest totals",
                    PostAnalyticsOut,
                ),
            ),
            tag="analytics",
        ),
    ]
