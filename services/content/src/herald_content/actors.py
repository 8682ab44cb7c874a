"""The content queues' actors: thin; the work is herald_common.content's, run as a job."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.broker import Broker
from pydantic import ValidationError

from herald_common.content import Writer, generate_month, regenerate_post, writer_from_settings
from herald_common.contracts import (
    GENERATE_MONTHLY,
    REGENERATE_POST,
    GenerateMonthlyPayload,
    RegeneratePostPayload,
)
from herald_common.jobs import run_job
from herald_common.workers import Deps, lazy


def declare_actors(
    broker: Broker, deps: Deps, *, writer: Writer | None = None
) -> list[dramatiq.Actor[Any, Any]]:
    """Declare `generate_monthly_content` and `regenerate_post` on `broker`.

    The writer comes from the settings (CONTENT_API_URL) unless one is given, and is built on
    first message, after Dramatiq forked.
    """

    @lazy
    def the_writer() -> Writer:
        return writer if writer is not None else writer_from_settings(deps.settings)

    def generate_monthly_content(**kwargs: Any) -> None:
        payload = GenerateMonthlyPayload.model_validate(kwargs)
        run_job(
            deps.engine(),
            GENERATE_MONTHLY,
            payload.job_id,
            lambda run: generate_month(
                run, registry=deps.platforms(), writer=the_writer(), settings=deps.settings
            ),
            events=deps.events(),
        )

    def regenerate_post_actor(**kwargs: Any) -> None:
        payload = RegeneratePostPayload.model_validate(kwargs)
        run_job(
            deps.engine(),
            REGENERATE_POST,
            payload.job_id,
            lambda run: regenerate_post(
                run, registry=deps.platforms(), writer=the_writer(), settings=deps.settings
            ),
            events=deps.events(),
        )

    # A malformed message will not get better by retrying it.
    malformed = (ValidationError, TypeError)
    return [
        dramatiq.actor(
            generate_monthly_content,
            broker=broker,
            throws=malformed,
            **GENERATE_MONTHLY.actor_options(),
        ),
        dramatiq.actor(
            regenerate_post_actor,
            broker=broker,
            throws=malformed,
            **REGENERATE_POST.actor_options(),
        ),
    ]
