"""Content generation: a month of drafts for a brand, and one post written again. Both answer
202 with the job to poll (/v1/jobs/{job_id}); the content worker does the writing."""

from __future__ import annotations

import falcon
from dramatiq.broker import Broker
from sqlalchemy.engine import Engine

from herald_api.parsing import parse_body
from herald_api.resources.jobs import accepted
from herald_api.routing import Operation, Route
from herald_api.schemas.content import GenerateBody, RegenerateBody
from herald_api.schemas.jobs import JobOut
from herald_api.services import content
from herald_common.platforms import PlatformRegistry
from herald_common.settings import Settings


class BrandGeneration:
    """POST /v1/brands/{brand_id}/generate"""

    def __init__(self, engine: Engine, broker: Broker) -> None:
        self._engine = engine
        self._broker = broker

    def on_post(self, req: falcon.Request, resp: falcon.Response, brand_id: str) -> None:
        body = parse_body(req, GenerateBody)
        job = content.start_generation(
            self._engine,
            self._broker,
            req.context.tenant_id,
            brand_id,
            body,
            max_active=req.context.max_active_jobs,
        )
        accepted(resp, job)


class PostRegeneration:
    """POST /v1/posts/{post_id}/regenerate"""

    def __init__(self, engine: Engine, broker: Broker) -> None:
        self._engine = engine
        self._broker = broker

    def on_post(self, req: falcon.Request, resp: falcon.Response, post_id: str) -> None:
        body = parse_body(req, RegenerateBody)
        job = content.start_regeneration(
            self._engine,
            self._broker,
            req.context.tenant_id,
            post_id,
            body,
            max_active=req.context.max_active_jobs,
        )
        accepted(resp, job)


def routes(
    *, engine: Engine, broker: Broker, platforms: PlatformRegistry, settings: Settings
) -> list[Route]:
    """The content routes."""
    return [
        Route(
            "/v1/brands/{brand_id}/generate",
            BrandGeneration(engine, broker),
            (
                Operation(
                    "post",
                    "Generate a month of draft posts for the brand",
                    JobOut,
                    status=202,
                    body=GenerateBody,
                    errors=(422,),
                    description="Drafts spread over the month at good local times in the "
                    "brand's time zone (`suggested_at`), each with draft targets on the brand's "
                    "default accounts of those platforms and a text that fits all of them. Poll "
                    "the job: `progress` counts the posts written, `result.post_ids` lists them. "
                    "422 (nothing enqueued) for a month that is over in the brand's time zone, "
                    "an unknown platform, or a count out of range.",
                ),
            ),
            tag="content",
        ),
        Route(
            "/v1/posts/{post_id}/regenerate",
            PostRegeneration(engine, broker),
            (
                Operation(
                    "post",
                    "Write a post's hook, body, hashtags, or all of it, again",
                    JobOut,
                    status=202,
                    body=RegenerateBody,
                    errors=(409, 422),
                    description="The other parts stay as they are, and the new text fits the "
                    "post's platforms. 409 for a post that was (or is being) published, or that "
                    "waits for approval or was approved: its text is no longer the writer's.",
                ),
            ),
            tag="content",
        ),
    ]
