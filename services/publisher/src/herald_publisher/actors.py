"""The `publish` queue's actor: thin; the work is in publishing.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.broker import Broker
from pydantic import ValidationError

from herald_common.contracts import PUBLISH, PublishTargetPayload, send
from herald_publisher.publishing import EarlyMessage, Publisher


def declare_actors(broker: Broker, publisher: Callable[[], Publisher]) -> dramatiq.Actor[Any, Any]:
    """Declare `publish_target` on `broker`; `publisher` hands out the process's Publisher."""

    def publish_target(target_id: str, version: int) -> None:
        payload = PublishTargetPayload(target_id=target_id, version=version)
        try:
            publisher().publish(payload.target_id, payload.version)
        except EarlyMessage as early:
            # Not a failure, so not a Dramatiq retry: the same message, due later.
            send(broker, PUBLISH, payload, delay_ms=max(1, math.ceil(early.seconds * 1000)))

    # A malformed message will not get better by retrying it.
    return dramatiq.actor(
        publish_target,
        broker=broker,
        throws=(ValidationError, TypeError),
        **PUBLISH.actor_options(),
    )
