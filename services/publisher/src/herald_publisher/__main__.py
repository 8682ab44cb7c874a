"""`herald-publisher`: the publish worker service (runs `dramatiq` on the publish queue)."""

from __future__ import annotations

from herald_common.contracts import PUBLISH
from herald_common.workers import run_worker


def main() -> None:
    """Start the publish workers."""
    run_worker("herald_publisher.worker", [PUBLISH.queue])


if __name__ == "__main__":
    main()
