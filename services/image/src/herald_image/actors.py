"""The `image` queue's actor: thin; the work is in herald_common.images.generation."""

from __future__ import annotations

import math
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from pydantic import ValidationError

from herald_common.contracts import GENERATE_IMAGE, GenerateImagePayload
from herald_common.errors import TransientError
from herald_common.images.generation import ImageGenerator
from herald_common.jobs import run_job
from herald_common.workers import Deps, lazy


def declare_actors(broker: Broker, deps: Deps) -> list[dramatiq.Actor[Any, Any]]:
    """Declare `generate_image` on `broker`.

    The job's record is the authority (`run_job` claims it, so a duplicate message does
    nothing); a provider's transient failure goes back to Dramatiq's retries, after the wait
    the provider asked for when it said one.
    """

    @lazy
    def generator() -> ImageGenerator:
        return ImageGenerator.from_settings(deps.engine(), deps.settings)

    def generate_image(**payload: Any) -> None:
        job = GenerateImagePayload.model_validate(payload, strict=False)
        try:
            run_job(deps.engine(), GENERATE_IMAGE, job.job_id, generator(), events=deps.events())
        except TransientError as exc:
            if exc.retry_after is None:
                raise
            delay = min(math.ceil(exc.retry_after * 1000), GENERATE_IMAGE.retry.max_backoff_ms)
            raise dramatiq.Retry(exc.message, delay=max(delay, 1)) from exc

    # A malformed message will not get better by retrying it.
    declare = dramatiq.actor(
        broker=broker, throws=(ValidationError, TypeError), **GENERATE_IMAGE.actor_options()
    )
    return [declare(generate_image)]
