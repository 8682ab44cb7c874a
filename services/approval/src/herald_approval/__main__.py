"""`herald-approval`: the approval worker service (`dramatiq` on its queue)."""

from __future__ import annotations

from herald_common.contracts import NOTIFY_APPROVERS
from herald_common.workers import run_worker


def main() -> None:
    """Start the approval workers."""
    run_worker("herald_approval.worker", [NOTIFY_APPROVERS.queue])


if __name__ == "__main__":
    main()
