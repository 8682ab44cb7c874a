"""`herald-content`: the content worker service (`dramatiq` on its queue)."""

from __future__ import annotations

from herald_common.contracts import GENERATE_MONTHLY, REGENERATE_POST
from herald_common.workers import run_worker


def main() -> None:
    """Start the content workers."""
    run_worker("herald_content.worker", [GENERATE_MONTHLY.queue, REGENERATE_POST.queue])


if __name__ == "__main__":
    main()
