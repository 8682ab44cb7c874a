"""`herald-webhooks`: the webhooks worker service (`dramatiq` on its queue)."""

from __future__ import annotations

from herald_common.contracts import DELIVER_WEBHOOK
from herald_common.workers import run_worker


def main() -> None:
    """Start the webhooks workers."""
    run_worker("herald_webhooks.worker", [DELIVER_WEBHOOK.queue])


if __name__ == "__main__":
    main()
