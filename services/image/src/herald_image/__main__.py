"""`herald-image`: the image worker service (`dramatiq` on its queue)."""

from __future__ import annotations

from herald_common.contracts import GENERATE_IMAGE
from herald_common.workers import run_worker


def main() -> None:
    """Start the image workers."""
    run_worker("herald_image.worker", [GENERATE_IMAGE.queue])


if __name__ == "__main__":
    main()
