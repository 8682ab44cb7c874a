"""The floor's worker: `publish_target` with a body that does nothing, on the publisher's terms.

`python -m bench.noop_worker` starts `dramatiq` through the publisher's own launcher
(`herald_common.workers.run_worker`), so its threads (PUBLISH_WORKER_CONCURRENCY), processes
(WORKER_PROCESSES) and consumer timeout are the publisher's. `dramatiq` then imports this
module, which builds the broker as Herald does and declares the actor from the PUBLISH
contract (same name, queue, priority, retries, time limit). The broker is, by
BENCH_FLOOR_MIDDLEWARE:

* `dramatiq` (the floor): `herald_common.broker.build_broker`, the Redis broker with
  Dramatiq's default middleware: what Dramatiq itself costs;
* `herald`: `herald_common.workers.worker_broker`, the publisher's own broker, with the
  middleware every Herald worker adds (job records, heartbeats, Prometheus when METRICS_PORT
  is set): what a message costs a Herald worker before the actor's body runs.

What is left between these and the real publisher is Herald's own work per message.
"""

from __future__ import annotations

import os

import dramatiq

from herald_common.broker import build_broker
from herald_common.contracts import PUBLISH
from herald_common.settings import get_settings
from herald_common.workers import configure_logging, run_worker, worker_broker

settings = get_settings()
configure_logging(settings)
MIDDLEWARE = os.environ.get("BENCH_FLOOR_MIDDLEWARE", "dramatiq")
broker = worker_broker(settings) if MIDDLEWARE == "herald" else build_broker(settings)
dramatiq.set_broker(broker)


def publish_target(target_id: str, version: int) -> None:
    """Do nothing: what a message costs Dramatiq by itself."""


noop_publish_target = dramatiq.actor(publish_target, broker=broker, **PUBLISH.actor_options())


if __name__ == "__main__":
    run_worker("bench.noop_worker", [PUBLISH.queue], argv=[])
