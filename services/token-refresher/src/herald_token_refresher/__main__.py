"""`herald-token-refresher`: the token-refresh worker service (`dramatiq` on its queue)."""

from __future__ import annotations

from herald_common.contracts import REFRESH_ACCOUNT
from herald_common.workers import run_worker


def main() -> None:
    """Start the token-refresh workers."""
    run_worker("herald_token_refresher.worker", [REFRESH_ACCOUNT.queue])


if __name__ == "__main__":
    main()
