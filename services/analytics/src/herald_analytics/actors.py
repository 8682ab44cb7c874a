"""The `analytics` queue's actor: thin; the work is in pulling.py."""

from __future__ import annotations

from datetime import date
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from pydantic import ValidationError

from herald_analytics.pulling import Puller
from herald_common.contracts import PULL_ANALYTICS, PullAnalyticsPayload
from herald_common.jobs import run_job
from herald_common.workers import Deps, lazy


def declare_actors(broker: Broker, deps: Deps) -> list[dramatiq.Actor[Any, Any]]:
    """Declare `pull_analytics` on `broker`, from its contract."""

    @lazy
    def puller() -> Puller:
        return Puller(engine=deps.engine(), platforms=deps.platforms(), settings=deps.settings)

    def pull_analytics(
        tenant_id: str,
        *,
        job_id: str | None = None,
        target_ids: list[str] | None = None,
        start: date | str | None = None,
        end: date | str | None = None,
        metrics: list[str] | None = None,
        post_ids: list[str] | None = None,
    ) -> None:
        values = {
            "tenant_id": tenant_id,
            "job_id": job_id,
            "target_ids": target_ids,
            "start": start,
            "end": end,
            "post_ids": post_ids,
        }
        if metrics is not None:
            values["metrics"] = metrics
        payload = PullAnalyticsPayload.model_validate(values, strict=False)
        if payload.job_id is not None:
            # A client's pull: its job records progress, result or failure.
            run_job(
                deps.engine(),
                PULL_ANALYTICS,
                payload.job_id,
                puller().pull_job,
                events=deps.events(),
            )
        else:
            # The scheduler's: a passing failure waits for the target's next slot.
            puller().pull_due(payload)

    # A malformed message will not get better by retrying it.
    return [
        dramatiq.actor(
            pull_analytics,
            broker=broker,
            throws=(ValidationError, TypeError),
            **PULL_ANALYTICS.actor_options(),
        )
    ]
