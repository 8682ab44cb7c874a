"""`herald-analytics`: the analytics worker service (`dramatiq` on its queue)."""

from __future__ import annotations

from herald_common.contracts import PULL_ANALYTICS
from herald_common.workers import run_worker


def main() -> None:
    """Start the analytics workers."""
    run_worker("herald_analytics.worker", [PULL_ANALYTICS.queue])


if __name__ == "__main__":
    main()
